// BucketEnv against a real gateway (run by tests/integration/s3_client.sh,
// with the environment s3_client_test.cpp describes), and the parts that
// need none: bucket URLs and the upload rate limit.
#include "s3/bucket_env.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "helpers/test_util.h"
#include "os/env.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::ErrorKindOf;

TEST(BucketUrlTest, ParsesBucketAndPrefix) {
  BucketUrl u = ParseBucketUrl("s3://backups/host1/vmback/");
  EXPECT_EQ(u.bucket, "backups");
  EXPECT_EQ(u.key, "host1/vmback");
  EXPECT_EQ(CanonicalPath("s3://backups/host1//"), "s3://backups/host1");
}

TEST(BucketUrlTest, RefusesWhatIsNoStorePlace) {
  for (const char* bad : {"s3://", "s3:///x", "s3://b", "s3://b/", "s3://b/a/../c", "s3://b/a//c", "s3://b/./a",
                          "/local/path", "s3://b/a\nb"}) {
    EXPECT_EQ(ErrorKindOf([&] { ParseBucketUrl(bad); }), ErrorKind::kConfig) << bad;
  }
}

TEST(S3RateLimitTest, SpreadsBytesOverTime) {
  S3RateLimit limit(1000000);  // 1 MB/s
  auto now = std::chrono::steady_clock::now();
  // A second's worth goes at once (the burst), the next waits its time.
  EXPECT_EQ(limit.Take(1000000, now).count(), 0);
  auto wait = limit.Take(500000, now);
  EXPECT_NEAR(std::chrono::duration<double>(wait).count(), 0.5, 0.01);
  // An idle hour gives no more than a second's credit.
  auto later = now + std::chrono::hours(1);
  EXPECT_EQ(limit.Take(1000000, later).count(), 0);
  EXPECT_NEAR(std::chrono::duration<double>(limit.Take(1000000, later)).count(), 1.0, 0.01);
  EXPECT_EQ(S3RateLimit(0).Take(1u << 30, now).count(), 0) << "0 is no limit";
}

std::string Need(const char* name) {
  std::string v = EnvironmentValue(name);
  if (v.empty()) ADD_FAILURE() << name << " is not set: run this binary through tests/integration/s3_client.sh";
  return v;
}

BucketSettings Settings(std::chrono::seconds lease = std::chrono::seconds(60)) {
  BucketSettings b;
  b.s3.endpoint = Need("VMBACK_TEST_S3_ENDPOINT");
  b.s3.scheme = S3Scheme::kHttp;
  b.s3.addressing = S3Addressing::kPath;
  b.s3.access_key = Need("VMBACK_TEST_S3_ACCESS_KEY");
  b.s3.secret_key = Need("VMBACK_TEST_S3_SECRET_KEY");
  b.retry.max_tries = 2;
  b.retry.deadline = std::chrono::seconds(10);
  b.lease = lease;
  return b;
}

class BucketEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = "s3://" + Need("VMBACK_TEST_S3_BUCKET") + "/" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" + RandomHex(4);
  }
  std::unique_ptr<BucketEnv> NewEnv(std::chrono::seconds lease = std::chrono::seconds(60)) {
    return std::make_unique<BucketEnv>(Env::Default(), [lease] { return Settings(lease); });
  }
  std::string root_;
};

TEST_F(BucketEnvTest, FilesAndDirectoriesAsAStoreSeesThem) {
  auto env = NewEnv();
  EXPECT_EQ(env->Status(root_).kind, FileKind::kMissing);
  env->MakeDir(root_);
  EXPECT_EQ(env->Status(root_).kind, FileKind::kDir) << "an empty directory exists (its marker)";
  EXPECT_TRUE(env->ListDir(root_).empty());
  env->MakeDir(root_ + "/packs");
  // A temporary name is held until renamed: nothing is sent before.
  WriteFileAtomic(env.get(), root_ + "/packs/a.pack", "pack bytes");
  EXPECT_EQ(ReadFileToString(env.get(), root_ + "/packs/a.pack", 100), "pack bytes");
  // Another process (a fresh Env) sees the same, from the gateway.
  auto other = NewEnv();
  EXPECT_EQ(other->ListDir(root_), std::vector<std::string>{"packs"});
  EXPECT_EQ(other->ListDir(root_ + "/packs"), std::vector<std::string>{"a.pack"});
  FileStatus st = other->Status(root_ + "/packs/a.pack");
  EXPECT_EQ(st.kind, FileKind::kFile);
  EXPECT_EQ(st.size, 10u);
  EXPECT_EQ(ReadFileToString(other.get(), root_ + "/packs/a.pack", 100), "pack bytes");
  // A rename of an object already there (setting a damaged file aside).
  other->Rename(root_ + "/packs/a.pack", root_ + "/packs/a.pack.bad-1");
  EXPECT_EQ(other->ListDir(root_ + "/packs"), std::vector<std::string>{"a.pack.bad-1"});
  EXPECT_FALSE(NewEnv()->Exists(root_ + "/packs/a.pack"));
  other->Remove(root_ + "/packs/a.pack.bad-1");
  EXPECT_TRUE(NewEnv()->ListDir(root_ + "/packs").empty());
  EXPECT_EQ(ErrorKindOf([&] { other->ListDir(root_ + "/nothing"); }), ErrorKind::kNotFound)
      << "a directory that is not there is no empty listing";
  EXPECT_EQ(ErrorKindOf([&] { other->Symlink("x", root_ + "/link"); }), ErrorKind::kConfig);
}

TEST_F(BucketEnvTest, ReadsInWindowsCheckedForLength) {
  auto env = NewEnv();
  std::string data = test::RandomBytes(3 << 20, 7);
  auto f = env->OpenWrite(root_ + "/big", CreateMode::kTruncate);
  f->Append(data.data(), data.size());
  f->Close();
  auto reader = NewEnv();  // a fresh process: nothing known of the object
  auto r = reader->OpenRead(root_ + "/big");
  ASSERT_EQ(r->Size(), data.size());
  std::string got(data.size(), '\0');
  // Sequential reads of odd sizes, then a read back at the start.
  for (size_t off = 0; off < data.size();) {
    size_t n = std::min<size_t>(77777, data.size() - off);
    ASSERT_EQ(r->ReadAt(off, got.data() + off, n), n);
    off += n;
  }
  EXPECT_EQ(got, data);
  char head[16];
  ASSERT_EQ(r->ReadAt(0, head, sizeof head), sizeof head);
  EXPECT_EQ(std::string(head, sizeof head), data.substr(0, sizeof head));
  EXPECT_EQ(r->ReadAt(data.size(), head, 1), 0u);
}

TEST_F(BucketEnvTest, OneWriterAtATime) {
  auto a = NewEnv();
  auto b = NewEnv();
  auto held = a->Lock(root_ + "/write.lock", LockMode::kExclusive);
  ASSERT_NE(held, nullptr);
  try {
    b->Lock(root_ + "/write.lock", LockMode::kExclusive);
    FAIL() << "a second writer took the lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kLocked);
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(ThisProcessId())), std::string::npos) << e.what();
  }
  held.reset();  // released: the object is deleted
  EXPECT_FALSE(NewEnv()->Exists(root_ + "/write.lock"));
  EXPECT_NE(b->Lock(root_ + "/write.lock", LockMode::kExclusive), nullptr);
}

TEST_F(BucketEnvTest, TwoTakersAtOnceNeverBothHoldIt) {
  // Both find no lock and write theirs at nearly the same moment: the read
  // back after the pause lets at most one go on.
  for (int round = 0; round < 3; round++) {
    const std::string lock = root_ + "/race-" + std::to_string(round);
    auto a = NewEnv();
    auto b = NewEnv();
    std::unique_ptr<FileLock> la, lb;
    std::thread ta([&] {
      try {
        la = a->Lock(lock, LockMode::kExclusive);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kLocked) << e.what();
      }
    });
    std::thread tb([&] {
      try {
        lb = b->Lock(lock, LockMode::kExclusive);
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kLocked) << e.what();
      }
    });
    ta.join();
    tb.join();
    EXPECT_FALSE(la && lb) << "round " << round << ": both took the lock";
  }
}

TEST_F(BucketEnvTest, TheLeaseIsRenewedWhileHeld) {
  auto a = NewEnv(std::chrono::seconds(4));
  auto held = a->Lock(root_ + "/write.lock", LockMode::kExclusive);
  // Past the first lease: renewed at each quarter, so still held.
  std::this_thread::sleep_for(std::chrono::seconds(6));
  auto b = NewEnv(std::chrono::seconds(4));
  EXPECT_EQ(ErrorKindOf([&] { b->Lock(root_ + "/write.lock", LockMode::kExclusive); }), ErrorKind::kLocked);
}

}  // namespace
}  // namespace vmback
