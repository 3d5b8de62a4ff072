// Tests for store/put_thread.h: blobs reach the store in the order given,
// the queue is bounded, a failed put reaches the caller, and stopping drops
// what is still queued.
#include "store/put_thread.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers/fault_env.h"
#include "helpers/test_util.h"
#include "os/env.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vmback {
namespace {

using test::RandomBytes;
using test::TempDir;

EncodedBlob DataBlob(size_t n, uint64_t seed) {
  std::string raw = RandomBytes(n, seed);
  return EncodeBlob(Sha256(raw), BlobType::kData, raw, 3);
}

// A blob the pack writer writes at once, past its buffer: the tests below
// watch the thread at its writes.
constexpr size_t kBig = PackWriter::kWriteBufferBytes + 1000;

// The entries of every pack file of the store, in file order, packs in the
// order given.
std::vector<Hash> PackedIds(Store* s, Env* env, const std::vector<Hash>& packs) {
  std::vector<Hash> ids;
  for (const Hash& p : packs) {
    auto f = env->OpenRead(s->PackPath(p));
    for (const PackEntry& e : ReadPackEntries(f.get())) ids.push_back(e.id);
  }
  return ids;
}

// An Env whose pack appends wait until the test opens the gate.
class GateEnv final : public EnvWrapper {
 public:
  GateEnv() : EnvWrapper(Env::Default()), open_(opened_.get_future().share()) {}
  void Open() { opened_.set_value(); }
  bool closed() const { return open_.wait_for(std::chrono::seconds(0)) != std::future_status::ready; }
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode, mode_t perm) override {
    auto f = EnvWrapper::OpenWrite(path, mode, perm);
    if (path.find("/tmp/pack") == std::string::npos) return f;
    return std::make_unique<GatedFile>(std::move(f), open_);
  }

 private:
  class GatedFile final : public WritableFileWrapper {
   public:
    GatedFile(std::unique_ptr<WritableFile> f, std::shared_future<void> open)
        : WritableFileWrapper(std::move(f)), open_(std::move(open)) {}
    void Append(const void* data, size_t n) override {
      open_.wait();
      WritableFileWrapper::Append(data, n);
    }

   private:
    std::shared_future<void> open_;
  };
  std::promise<void> opened_;
  std::shared_future<void> open_;
};

class PutThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_ / "store";
    Store::Init(Env::Default(), dir_, kDefaultStoreBlockSize);
  }
  std::unique_ptr<Store> Open(Env* env) { return Store::Open(env, dir_, LockMode::kAppend, &log_); }

  TempDir tmp_;
  std::string dir_;
  Logger log_{LogLevel::kError, false};
};

TEST_F(PutThreadTest, PutsInOrderAndCountsWhatWasNew) {
  auto s = Open(Env::Default());
  std::vector<EncodedBlob> blobs;
  for (int i = 0; i < 40; i++) blobs.push_back(DataBlob(1000 + i * 97, i));
  std::string list_raw = RandomBytes(64, 99);
  EncodedBlob list = EncodeBlob(Sha256(list_raw), BlobType::kList, list_raw, 3);
  {
    PutThread t(s.get(), 8000);  // a few blobs at a time
    for (const auto& b : blobs) t.Put(b);
    t.Put(blobs[3]);  // the store has it by then, or has it pending: not written again
    t.Put(list);
    t.Finish();
    EXPECT_EQ(t.written(BlobType::kData), blobs.size());
    EXPECT_EQ(t.written(BlobType::kList), 1u);
    EXPECT_EQ(t.written(BlobType::kTree), 0u);
  }
  s->Flush();
  std::vector<Hash> want;
  for (const auto& b : blobs) want.push_back(b.id);
  want.push_back(list.id);
  EXPECT_EQ(PackedIds(s.get(), Env::Default(), s->ListPackFiles()), want);
  for (int i = 0; i < 40; i++) EXPECT_EQ(s->Get(blobs[i].id), RandomBytes(1000 + i * 97, i));
}

TEST_F(PutThreadTest, PutWaitsWhileTheQueueIsFull) {
  GateEnv env;
  auto s = Open(&env);
  {
    PutThread t(s.get(), 2 * kBig + kBig / 2);
    t.Put(DataBlob(kBig, 1));  // taken by the thread, which waits at the gate
    t.Put(DataBlob(kBig, 2));  // queued
    t.Put(DataBlob(kBig, 3));  // queued: 2 kBig bytes
    auto third = std::async(std::launch::async, [&] { t.Put(DataBlob(kBig, 4)); });
    EXPECT_EQ(third.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
        << "a Put beyond 2.5 kBig queued bytes did not wait";
    EXPECT_TRUE(env.closed());
    env.Open();
    third.get();
    t.Finish();
    EXPECT_EQ(t.written(BlobType::kData), 4u);
  }
  s->Flush();
  EXPECT_EQ(PackedIds(s.get(), Env::Default(), s->ListPackFiles()).size(), 4u);
}

TEST_F(PutThreadTest, AFailedPutReachesTheCallerAndStopsTheThread) {
  // How many write steps opening takes: the next one creates the pack.
  int64_t opened = 0;
  {
    FaultEnv counting(Env::Default(), FaultPlan{});
    Open(&counting);
    opened = counting.write_steps();
  }
  FaultPlan plan;
  plan.fail_write_at = opened + 2;  // the pack is created, its header write fails
  plan.write_errno = ENOSPC;
  plan.fail_every_write_after = true;
  FaultEnv env(Env::Default(), plan);
  auto s = Open(&env);
  ASSERT_EQ(env.write_steps(), opened);
  PutThread t(s.get(), 4 * kBig);
  t.Put(DataBlob(kBig, 1));
  try {
    t.Finish();
    ADD_FAILURE() << "Finish did not throw the put's error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir_ + "/tmp/pack"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(s->broken());
  // Later puts throw the same error at once and put nothing.
  const int64_t steps = env.write_steps();
  try {
    t.Put(DataBlob(kBig, 2));
    ADD_FAILURE() << "Put after a failed put did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNoSpace) << e.what();
  }
  EXPECT_THROW(t.Finish(), Error);
  EXPECT_EQ(env.write_steps(), steps);
}

TEST_F(PutThreadTest, StoppingDropsWhatIsQueuedAndKeepsTheOrder) {
  GateEnv env;
  auto s = Open(&env);
  std::vector<EncodedBlob> blobs;
  for (int i = 0; i < 10; i++) blobs.push_back(DataBlob(kBig, 100 + i));
  std::thread opener;
  {
    PutThread t(s.get(), 16 * kBig);
    for (const auto& b : blobs) t.Put(b);
    // Destroyed with the thread at the gate and blobs queued (an
    // interrupted scan): the blob being put is finished, the rest dropped.
    opener = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      env.Open();
    });
  }
  opener.join();
  // What was put is a prefix of what was given.
  size_t put = 0;
  while (put < blobs.size() && s->Has(blobs[put].id)) put++;
  for (size_t i = put; i < blobs.size(); i++) EXPECT_FALSE(s->Has(blobs[i].id)) << i << " put after " << put;
  EXPECT_LT(put, blobs.size()) << "nothing was dropped";
  s->Flush();
  for (size_t i = 0; i < put; i++) EXPECT_EQ(s->Get(blobs[i].id), RandomBytes(kBig, 100 + i));
}

}  // namespace
}  // namespace vmback
