// The crash journal of `vmback run`: what a run records is what the next
// one reads back; a torn last line is ignored; a journal is read as hostile
// (a record of the wrong shape is refused naming its line, a mount point
// vmback does not make is never unmounted) and kept until all is undone.
#include "job/journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "helpers/test_util.h"
#include "util/error.h"

namespace vmback {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  std::string Path() const { return tmp_ / "journal"; }
  std::string MountPoint(const std::string& volume) const { return tmp_ / ("mnt-" + volume); }
  void Append(const std::string& text) { test::WriteFile(Path(), test::ReadFile(Path()) + text); }
  // ReadJournal refuses the journal as corrupt, naming its line 2.
  void ExpectRefusedAtLine2() {
    try {
      ReadJournal(env_, Path());
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorrupt);
      EXPECT_NE(std::string(e.what()).find(Path() + ":2"), std::string::npos) << e.what();
    }
  }
  Env* env_ = Env::Default();
  test::TempDir tmp_;
  Logger log_{LogLevel::kError, false};
};

TEST_F(JournalTest, WhatARunRecordsIsWhatTheNextReads) {
  {
    Journal j(env_, Path(), "run-1");
    j.Record({{"op", "quiesce"}, {"vm", "db"}, {"method", "agent"}});
    j.Record({{"op", "quiesce"}, {"vm", "web"}, {"method", "suspend"}});
    j.Record({{"op", "released"}, {"vm", "db"}});
    j.Record({{"op", "mount"}, {"dir", MountPoint("root")}});
    j.Record({{"op", "mount"}, {"dir", MountPoint("home")}});
    j.Record({{"op", "unmounted"}, {"dir", MountPoint("root")}});
    j.Record({{"op", "snapshot"}, {"record", "lvm vg/lv vg/lv-snap"}});
  }  // a crash: never closed
  struct stat st;
  ASSERT_EQ(::stat(Path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  Leftovers left = ReadJournal(env_, Path());
  EXPECT_EQ(left.run_id, "run-1");
  ASSERT_EQ(left.vms.size(), 1u);
  EXPECT_EQ(left.vms[0], std::make_pair(std::string("web"), std::string("suspend")));
  EXPECT_EQ(left.mounts, std::vector<std::string>{MountPoint("home")});
  EXPECT_EQ(left.snapshots, std::vector<std::string>{"lvm vg/lv vg/lv-snap"});
  EXPECT_FALSE(left.empty());
}

TEST_F(JournalTest, AJournalIsNeverOpenedOverAnExistingFile) {
  test::WriteFile(Path(), "someone else's\n");
  EXPECT_THROW(Journal(env_, Path(), "run-2"), Error);
  EXPECT_EQ(test::ReadFile(Path()), "someone else's\n");
}

TEST_F(JournalTest, CloseRemovesIt) {
  Journal j(env_, Path(), "run-3");
  j.Record({{"op", "quiesce"}, {"vm", "db"}, {"method", "agent"}});
  j.Close();
  EXPECT_FALSE(env_->Exists(Path()));
}

TEST_F(JournalTest, ATornLastLineIsIgnored) {
  { Journal j(env_, Path(), "run-4"); }
  Append("{\"op\":\"quiesce\",\"vm\":\"db\",\"meth");
  Leftovers left = ReadJournal(env_, Path());
  EXPECT_EQ(left.run_id, "run-4");
  EXPECT_TRUE(left.empty());
}

TEST_F(JournalTest, ARecordOfTheWrongShapeIsRefusedNamingItsLine) {
  for (const std::string& forged : {std::string("{\"op\":\"quiesce\",\"vm\":5}"), std::string("[1,2,3]"),
                                    std::string("\"quiesce\""), std::string("{\"op\":7}"),
                                    std::string("{\"op\":\"mount\",\"dir\":{\"x\":1}}"),
                                    std::string("{\"op\":\"quiesce\",\"vm\":\"db\",\"method\":null}")}) {
    SCOPED_TRACE(forged);
    if (env_->Exists(Path())) env_->Remove(Path());
    { Journal j(env_, Path(), "run-5"); }
    Append(forged + "\n");
    ExpectRefusedAtLine2();
  }
}

TEST_F(JournalTest, AnUnreadableLineBeforeTheLastIsRefused) {
  { Journal j(env_, Path(), "run-6"); }
  Append("{\"op\":\"quiesce\",\"vm\":\"db\"\n{\"op\":\"released\",\"vm\":\"db\"}\n");
  ExpectRefusedAtLine2();
}

TEST_F(JournalTest, RecoveryRefusesAMountPointVmbackDoesNotMakeAndKeepsTheJournal) {
  {
    Journal j(env_, Path(), "run-7");
    j.Record({{"op", "mount"}, {"dir", "/"}});
    j.Record({{"op", "mount"}, {"dir", tmp_ / "mnt-../etc"}});
  }
  try {
    RecoverFromJournal(env_, Path(), nullptr, &log_);
    ADD_FAILURE() << "recovered";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("refusing mount record '/'"), std::string::npos) << what;
    EXPECT_NE(what.find("refusing mount record '" + tmp_.path() + "/mnt-../etc'"), std::string::npos) << what;
    EXPECT_NE(what.find(Path()), std::string::npos) << what;
  }
  EXPECT_TRUE(env_->Exists(Path()));
}

TEST_F(JournalTest, RecoveryWithoutLibvirtKeepsTheVmsToResume) {
  {
    Journal j(env_, Path(), "run-8");
    j.Record({{"op", "quiesce"}, {"vm", "db"}, {"method", "agent"}});
  }
  try {
    RecoverFromJournal(env_, Path(), nullptr, &log_);
    ADD_FAILURE() << "recovered";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("VM db: no libvirt connection"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(env_->Exists(Path()));
}

TEST_F(JournalTest, NothingLeftRemovesTheJournal) {
  {
    Journal j(env_, Path(), "run-9");
    j.Record({{"op", "mount"}, {"dir", MountPoint("root")}});
    j.Record({{"op", "unmounted"}, {"dir", MountPoint("root")}});
  }
  EXPECT_TRUE(RecoverFromJournal(env_, Path(), nullptr, &log_).empty());
  EXPECT_FALSE(env_->Exists(Path()));
}

}  // namespace
}  // namespace vmback
