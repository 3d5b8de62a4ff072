// S3Client against a real gateway: tests/integration/s3_client.sh starts a
// private Ceph cluster with radosgw (ceph_lib.sh), makes a bucket and runs
// this binary with
//   VMBACK_TEST_S3_ENDPOINT, VMBACK_TEST_S3_BUCKET,
//   VMBACK_TEST_S3_ACCESS_KEY, VMBACK_TEST_S3_SECRET_KEY (never argv),
//   VMBACK_TEST_CEPH_LIB (ceph_lib.sh) and VMBACK_TEST_CEPH_DIR, with which
//   the fault tests kill radosgw by its pid and start it again.
// Without them every test fails (never skips): a CI run without the gateway
// must not pass for one with it.
#include "s3/s3_client.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "helpers/test_util.h"
#include "os/env.h"
#include "util/error.h"

namespace vmback {
namespace {

using test::ErrorKindOf;
using test::RandomBytes;

std::string Need(const char* name) {
  std::string v = EnvironmentValue(name);
  if (v.empty()) {
    ADD_FAILURE() << name << " is not set: run this binary through tests/integration/s3_client.sh, "
                  << "which starts the Ceph gateway it needs";
  }
  return v;
}

S3Config GatewayConfig() {
  S3Config c;
  c.endpoint = Need("VMBACK_TEST_S3_ENDPOINT");
  c.scheme = S3Scheme::kHttp;
  c.addressing = S3Addressing::kPath;
  c.access_key = Need("VMBACK_TEST_S3_ACCESS_KEY");
  c.secret_key = Need("VMBACK_TEST_S3_SECRET_KEY");
  return c;
}

// Short retries, so that a test of a failing gateway ends in seconds.
S3Retry QuickRetry() {
  S3Retry r;
  r.max_tries = 3;
  r.first_backoff = std::chrono::milliseconds(200);
  r.deadline = std::chrono::seconds(10);
  r.stall_timeout = std::chrono::seconds(10);
  return r;
}

class S3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bucket_ = Need("VMBACK_TEST_S3_BUCKET");
    ASSERT_FALSE(bucket_.empty());
    ASSERT_FALSE(GatewayConfig().endpoint.empty());
    client_ = std::make_unique<S3Client>(Env::Default(), GatewayConfig(), bucket_, QuickRetry());
    // Each test under its own prefix, so runs and tests never meet.
    prefix_ = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" + RandomHex(4) + "/";
  }

  // Drives radosgw through ceph_lib.sh: "rgw-kill" (SIGKILL by its pid) or
  // "rgw-start" (the same port; waits until it answers).
  static void Gateway(const std::string& what) {
    std::string lib = Need("VMBACK_TEST_CEPH_LIB");
    std::string dir = Need("VMBACK_TEST_CEPH_DIR");
    RunResult r = test::Exec({"bash", lib, what, dir});
    ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
  }

  std::string bucket_;
  std::string prefix_;
  std::unique_ptr<S3Client> client_;
};

TEST_F(S3ClientTest, SmallObjectsRoundTrip) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20}) {
    std::string key = prefix_ + "obj-" + std::to_string(size);
    std::string bytes = RandomBytes(size, size + 1);
    client_->Put(key, bytes);
    EXPECT_EQ(client_->Get(key, size), bytes) << key;
    EXPECT_EQ(client_->Head(key), std::optional<uint64_t>(size)) << key;
  }
}

TEST_F(S3ClientTest, LargeObjectsRoundTripByteForByte) {
  for (size_t size : {size_t{20} << 20, (size_t{64} << 20) + 3}) {
    std::string key = prefix_ + "big-" + std::to_string(size);
    std::string bytes = RandomBytes(size, 7 + size);
    uint64_t last = 0;
    client_->Put(key, bytes, [&](uint64_t sent) {
      EXPECT_GE(sent, last);
      last = sent;
    });
    EXPECT_EQ(last, size);
    std::string back = client_->Get(key, size);
    EXPECT_TRUE(back == bytes) << key << ": " << back.size() << " bytes back of " << size;
  }
}

TEST_F(S3ClientTest, GetOfAnObjectLargerThanAllowedIsRefusedBeforeReadingIt) {
  std::string key = prefix_ + "four-mib";
  client_->Put(key, RandomBytes(4 << 20, 3));
  std::string message;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ErrorKindOf([&] { client_->Get(key, 1000); }, &message), ErrorKind::kCorrupt);
  EXPECT_NE(message.find(bucket_ + "/" + key), std::string::npos) << message;
  EXPECT_NE(message.find("4194304 bytes, more than the 1000 allowed"), std::string::npos) << message;
  EXPECT_NE(message.find("refused before reading it"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // One byte short of the size is refused too; the size itself is fine.
  EXPECT_EQ(ErrorKindOf([&] { client_->Get(key, (4 << 20) - 1); }), ErrorKind::kCorrupt);
  EXPECT_EQ(client_->Get(key, 4 << 20).size(), size_t{4} << 20);
}

TEST_F(S3ClientTest, ListFollowsEveryPageToTheEnd) {
  std::vector<S3Object> want;
  for (int i = 0; i < 1100; ++i) {
    char name[32];
    snprintf(name, sizeof(name), "k%05d", i);
    std::string body(i % 7, 'x');
    client_->Put(prefix_ + "many/" + name, body);
    want.push_back({prefix_ + "many/" + name, body.size()});
  }
  client_->Put(prefix_ + "other", "not listed under many/");
  // 100 keys a page: 11 full pages and an empty last answer, or 12 pages.
  EXPECT_EQ(client_->List(prefix_ + "many/", 100), want);
  EXPECT_EQ(client_->List(prefix_ + "many/", 1000), want);
  EXPECT_EQ(client_->List(prefix_ + "many/", 7), want);
  EXPECT_EQ(client_->List(prefix_, 1000).size(), want.size() + 1);
  // A bucket prefix with nothing under it is an empty listing, not an error.
  EXPECT_TRUE(client_->List(prefix_ + "nothing/").empty());
  // More objects than the caller allows: an error, not the first max_keys.
  EXPECT_EQ(ErrorKindOf([&] { client_->List(prefix_ + "many/", 100, 1000); }), ErrorKind::kCorrupt);
}

TEST_F(S3ClientTest, HeadAndDelete) {
  std::string key = prefix_ + "doomed";
  EXPECT_EQ(client_->Head(key), std::nullopt);
  client_->Put(key, "12345");
  EXPECT_EQ(client_->Head(key), std::optional<uint64_t>(5));
  client_->Delete(key);
  EXPECT_EQ(client_->Head(key), std::nullopt);
  client_->Delete(key);  // already gone: no error
  std::string message;
  EXPECT_EQ(ErrorKindOf([&] { client_->Get(key, 100); }, &message), ErrorKind::kNotFound);
  EXPECT_NE(message.find(bucket_ + "/" + key), std::string::npos) << message;
}

TEST_F(S3ClientTest, WrongSecretKeyIsAClearErrorWithoutRetries) {
  S3Config bad = GatewayConfig();
  bad.secret_key = std::string(40, 'x');
  S3Retry patient;  // the default: five tries over minutes, were they retried
  S3Client client(Env::Default(), bad, bucket_, patient);
  auto t0 = std::chrono::steady_clock::now();
  std::string message;
  EXPECT_EQ(ErrorKindOf([&] { client.Put(prefix_ + "denied", "x"); }, &message), ErrorKind::kConfig);
  EXPECT_NE(message.find("SignatureDoesNotMatch"), std::string::npos) << message;
  EXPECT_NE(message.find(bucket_ + "/" + prefix_ + "denied"), std::string::npos) << message;
  EXPECT_EQ(message.find(std::string(40, 'x')), std::string::npos) << "the secret is in the message";
  EXPECT_EQ(ErrorKindOf([&] { client.List(prefix_); }, &message), ErrorKind::kConfig);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(client_->Head(prefix_ + "denied"), std::nullopt);
}

TEST_F(S3ClientTest, GatewayRefusesABodyThatDoesNotMatchItsContentMd5) {
  std::string key = prefix_ + "damaged";
  std::string bytes = RandomBytes(100000, 5);
  // The MD5 of other bytes, in Content-MD5's form (base64 of 16 bytes):
  // as if the body had been damaged on the way.
  std::string other_md5 = "1B2M2Y8AsgTpgAmY7PhCfg==";  // MD5 of ""
  std::string message;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ErrorKindOf([&] { client_->PutWithContentMd5(key, bytes, other_md5); }, &message), ErrorKind::kIo);
  EXPECT_NE(message.find("BadDigest"), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3)) << "retried a refusal";
  EXPECT_EQ(client_->Head(key), std::nullopt);
  // A malformed one is refused as well.
  EXPECT_NE(ErrorKindOf([&] { client_->PutWithContentMd5(key, bytes, "not-base64"); }), ErrorKind::kOther);
  EXPECT_EQ(client_->Head(key), std::nullopt);
}

TEST_F(S3ClientTest, KeysAreCheckedBeforeAnyRequest) {
  for (std::string key : {std::string(""), std::string("a/../b"), std::string(".."), std::string("a//b"),
                          std::string("/abs"), std::string("a/./b"), std::string("tab\there"),
                          std::string("nl\n"), std::string(1025, 'k'), std::string("bad\xff utf8")}) {
    std::string message;
    EXPECT_EQ(ErrorKindOf([&] { client_->Put(key, "x"); }, &message), ErrorKind::kConfig) << key;
    EXPECT_NE(message.find("S3 key"), std::string::npos) << message;
  }
  EXPECT_NO_THROW(CheckS3Key("packs/ab/abcdef.pack"));
  EXPECT_NO_THROW(CheckS3Key("host-1/index/"));
  EXPECT_NO_THROW(CheckS3Key(std::string(1024, 'k')));
  EXPECT_TRUE(client_->List(prefix_).empty());
}

TEST_F(S3ClientTest, ThreadsShareOneClient) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        std::string key = prefix_ + "t" + std::to_string(t) + "/" + std::to_string(i);
        std::string bytes = RandomBytes(256 << 10, t * 100 + i);
        client_->Put(key, bytes);
        EXPECT_TRUE(client_->Get(key, bytes.size()) == bytes) << key;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(client_->List(prefix_).size(), 40u);
}

// A gateway that holds the connection and answers nothing (radosgw stopped
// with SIGSTOP): each try ends at the stall timeout, the call at max_tries.
TEST_F(S3ClientTest, EveryRequestTimesOutWhenTheGatewayAnswersNothing) {
  client_->Put(prefix_ + "a", "a");
  S3Retry retry = QuickRetry();
  retry.max_tries = 2;
  retry.first_backoff = std::chrono::milliseconds(100);
  retry.stall_timeout = std::chrono::seconds(2);
  S3Client client(Env::Default(), GatewayConfig(), bucket_, retry);
  Gateway("rgw-freeze");
  std::string message;
  auto t0 = std::chrono::steady_clock::now();
  ErrorKind kind = ErrorKindOf([&] { client.Head(prefix_ + "a"); }, &message);
  auto took = std::chrono::steady_clock::now() - t0;
  Gateway("rgw-thaw");
  EXPECT_EQ(kind, ErrorKind::kIo) << message;
  EXPECT_NE(message.find("timed out"), std::string::npos) << message;
  EXPECT_NE(message.find("gave up after 2 tries"), std::string::npos) << message;
  EXPECT_GE(took, std::chrono::seconds(4));
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_EQ(client.Head(prefix_ + "a"), std::optional<uint64_t>(1));
}

// --- Credentials (no gateway needed, but kept beside the client) ----------

class ScopedEnvVar {
 public:
  ScopedEnvVar(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
    if (value.empty()) ::unsetenv(name);
  }
  ~ScopedEnvVar() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The credentials LoadS3Credentials finds for profile.
std::string Loaded(const std::string& profile) {
  S3Config c;
  LoadS3Credentials(Env::Default(), profile, &c);
  return c.access_key + " " + c.secret_key + " " + c.region;
}

TEST(S3CredentialsTest, EnvironmentThenCredentialsFile) {
  test::TempDir dir;
  std::string file = dir / "credentials";
  test::WriteFile(file,
                  "# a comment\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n\n"
                  "[backup]\r\naws_access_key_id=AKBACKUP\r\naws_secret_access_key=sbackup\r\nregion=eu-west-3\r\n");
  Env::Default()->SetMode(file, 0600);
  ScopedEnvVar f("AWS_SHARED_CREDENTIALS_FILE", file);
  ScopedEnvVar p("AWS_PROFILE", "");
  ScopedEnvVar r("AWS_DEFAULT_REGION", "");
  ScopedEnvVar r2("AWS_REGION", "");
  {
    ScopedEnvVar a("AWS_ACCESS_KEY_ID", "");
    ScopedEnvVar s("AWS_SECRET_ACCESS_KEY", "");
    S3Config c;
    EXPECT_EQ(Loaded(""), "AKDEFAULT sdefault us-east-1");
    EXPECT_EQ(Loaded("backup"), "AKBACKUP sbackup eu-west-3");
    {
      ScopedEnvVar profile("AWS_PROFILE", "backup");
      EXPECT_EQ(Loaded(""), "AKBACKUP sbackup eu-west-3");
    }
    std::string message;
    EXPECT_EQ(ErrorKindOf([&] { LoadS3Credentials(Env::Default(), "nosuch", &c); }, &message), ErrorKind::kConfig);
    EXPECT_NE(message.find("no profile [nosuch]"), std::string::npos) << message;

    // Readable by others: refused, naming the file and the mode.
    Env::Default()->SetMode(file, 0644);
    EXPECT_EQ(ErrorKindOf([&] { LoadS3Credentials(Env::Default(), "", &c); }, &message), ErrorKind::kConfig);
    EXPECT_NE(message.find(file), std::string::npos) << message;
    EXPECT_NE(message.find("0644"), std::string::npos) << message;
    Env::Default()->SetMode(file, 0600);

    // Too large a file is refused before it is read.
    std::string big = dir / "big";
    test::WriteFile(big, std::string(65 << 10, '#'));
    Env::Default()->SetMode(big, 0600);
    ScopedEnvVar fb("AWS_SHARED_CREDENTIALS_FILE", big);
    EXPECT_EQ(ErrorKindOf([&] { LoadS3Credentials(Env::Default(), "", &c); }), ErrorKind::kCorrupt);
  }
  {
    // The environment wins over the file.
    ScopedEnvVar a("AWS_ACCESS_KEY_ID", "AKENV");
    ScopedEnvVar s("AWS_SECRET_ACCESS_KEY", "senv");
    ScopedEnvVar reg("AWS_DEFAULT_REGION", "ap-south-1");
    EXPECT_EQ(Loaded("backup"), "AKENV senv ap-south-1");
  }
  {
    ScopedEnvVar a("AWS_ACCESS_KEY_ID", "AKENV");
    ScopedEnvVar s("AWS_SECRET_ACCESS_KEY", "");
    S3Config c;
    EXPECT_EQ(ErrorKindOf([&] { LoadS3Credentials(Env::Default(), "", &c); }), ErrorKind::kConfig);
  }
}

// --- Faults: radosgw killed by its pid (last: they stop the gateway) -------

TEST_F(S3ClientTest, GatewayKilledDuringAnUploadLeavesNoObjectAndTheNextPutWorks) {
  std::string key = prefix_ + "interrupted";
  std::string bytes = RandomBytes(size_t{128} << 20, 11);
  bool killed = false;
  std::string message;
  auto t0 = std::chrono::steady_clock::now();
  ErrorKind kind = ErrorKindOf(
      [&] {
        client_->Put(key, bytes, [&](uint64_t sent) {
          if (!killed && sent >= (uint64_t{32} << 20)) {
            killed = true;
            Gateway("rgw-kill");
          }
        });
      },
      &message);
  EXPECT_TRUE(killed);
  EXPECT_EQ(kind, ErrorKind::kIo) << message;
  EXPECT_NE(message.find("gave up after 3 tries"), std::string::npos) << message;
  EXPECT_NE(message.find(bucket_ + "/" + key), std::string::npos) << message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));

  Gateway("rgw-start");
  EXPECT_EQ(client_->Head(key), std::nullopt) << "a half object is visible";
  EXPECT_TRUE(client_->List(prefix_).empty());
  client_->Put(key, bytes.substr(0, 5 << 20));
  EXPECT_TRUE(client_->Get(key, 5 << 20) == bytes.substr(0, 5 << 20));
}

TEST_F(S3ClientTest, ListWhileTheGatewayIsDownIsAnErrorNotAnEmptyBucket) {
  client_->Put(prefix_ + "a", "a");
  Gateway("rgw-kill");
  std::string message;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ErrorKindOf([&] { client_->List(prefix_); }, &message), ErrorKind::kIo);
  EXPECT_NE(message.find("S3 LIST " + bucket_ + "/" + prefix_), std::string::npos) << message;
  EXPECT_NE(message.find("gave up after 3 tries"), std::string::npos) << message;
  EXPECT_EQ(ErrorKindOf([&] { client_->Head(prefix_ + "a"); }), ErrorKind::kIo);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15));
  Gateway("rgw-start");
  EXPECT_EQ(client_->List(prefix_), (std::vector<S3Object>{{prefix_ + "a", 1}}));
}

}  // namespace
}  // namespace vmback
