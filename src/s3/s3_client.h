// A client for one bucket of an S3-compatible object store (Ceph RGW, MinIO,
// AWS S3), over libs3: the transport a store copy in a bucket is built on.
//
// What Debian's libs3 (2.0) can do sets what this client does: requests are
// signed with AWS signature version 2 (RGW and MinIO accept it; AWS regions
// opened after 2014 and Backblaze B2 need version 4, which libs3 2.0 lacks),
// and there is no multipart upload (an object is one PUT, so at most 5 GiB).
// libs3 also hides the HTTP status of an error without an S3 error body;
// errors name libs3's status and the gateway's code and message instead.
//
// Errors: every method throws vmback::Error naming the bucket and key and
// what the gateway said. kNotFound only where a method says so; a failure is
// never reported as an empty result (a listing that failed is not an empty
// bucket). Retries: requests that fail for a connection error, a timeout or
// a server error (5xx) are tried again with exponential backoff, up to
// S3Retry::max_tries and S3Retry::deadline; a refusal (4xx: access denied,
// bad signature, bad digest) is never retried.
//
// Thread safety: an S3Client holds no mutable state; one client may be used
// from several threads at once. libs3's process-wide initialization is done
// once, inside this folder.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace vmback {

class Env;

enum class S3Scheme { kHttps, kHttp };
// Path style: http://host/bucket/key (RGW and MinIO by default); virtual
// host: http://bucket.host/key (AWS).
enum class S3Addressing { kPath, kVirtualHost };

struct S3Config {
  std::string endpoint;  // "host" or "host:port", no scheme
  S3Scheme scheme = S3Scheme::kHttps;
  // Kept for the configuration and the signature version 4 a later transport
  // needs; libs3 2.0 signs with version 2 and sends no region.
  std::string region = "us-east-1";
  S3Addressing addressing = S3Addressing::kPath;
  std::string access_key;
  std::string secret_key;  // never logged, never in an error message
};

// Fills config->access_key, secret_key and region, as the AWS tools do:
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (both or neither) and
// AWS_DEFAULT_REGION (or AWS_REGION) from the environment; what they leave
// unset from the credentials file (AWS_SHARED_CREDENTIALS_FILE, else
// $HOME/.aws/credentials), section [profile] (profile "" means
// AWS_PROFILE, else "default"): aws_access_key_id, aws_secret_access_key,
// region. The file is read through env, at most 64 KiB; a symlink, a file
// group- or world-readable, or a profile without both keys is refused
// (kConfig, naming the file). A missing file is an error only when the keys
// are found nowhere.
void LoadS3Credentials(Env* env, const std::string& profile, S3Config* config);

struct S3Retry {
  int max_tries = 5;  // tries of one request in all (>= 1)
  std::chrono::milliseconds first_backoff{200};  // doubled after each failed try
  std::chrono::milliseconds max_backoff{10000};
  // No try starts later than this after the first one.
  std::chrono::seconds deadline{300};
  // A request that moves no byte for this long is aborted (and counts as a
  // failed try): every request has a timeout, whatever its size.
  std::chrono::seconds stall_timeout{30};
};

// Shared by the clients of one process: the upload rate limit
// (--upload-limit). Thread-safe; bytes_per_second 0 = no limit.
class S3RateLimit {
 public:
  explicit S3RateLimit(uint64_t bytes_per_second) : rate_(bytes_per_second) {}
  uint64_t rate() const { return rate_; }
  // How long the caller must wait before sending n more bytes so that the
  // bytes sent through this limit average at most rate() per second (a
  // burst of one second's worth is allowed); books the n bytes.
  std::chrono::nanoseconds Take(uint64_t n, std::chrono::steady_clock::time_point now);

 private:
  const uint64_t rate_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point next_{};  // when the bytes booked so far are due
};

struct S3Object {
  std::string key;
  uint64_t size = 0;
  bool operator==(const S3Object&) const = default;
};

// Keys are checked where they are made: 1 to 1024 bytes of valid UTF-8, no
// control characters, no "." or ".." component, no empty component (no
// leading "/", no "//"). Throws kConfig naming the key (escaped).
void CheckS3Key(const std::string& key);

class S3Client {
 public:
  // Bytes of the object sent so far, called from the request's thread while
  // it uploads (for progress, and for tests that fail the gateway mid-way).
  // It runs inside a libs3 callback: it must not throw. A retried try
  // counts from 0 again.
  using Progress = std::function<void(uint64_t bytes_sent)>;

  // env gives the clock that retries wait on. REQUIRES: bucket is a valid
  // bucket name (checked: kConfig otherwise).
  S3Client(Env* env, S3Config config, std::string bucket, S3Retry retry = {});

  // Uploads from now on wait on this limit (borrowed; it must outlive the
  // client). nullptr: none.
  void set_upload_limit(S3RateLimit* limit) { upload_limit_ = limit; }

  const std::string& bucket() const { return bucket_; }

  // Stores bytes as key in one PUT with its Content-MD5, so the gateway
  // refuses a body damaged on the way (BadDigest). Objects above 5 GiB are
  // refused (no multipart in libs3 2.0). A failed Put leaves either the old
  // object or the new one, never a part of it (a PUT is atomic in S3).
  void Put(const std::string& key, const std::string& bytes, const Progress& progress = {});
  // Put with a given Content-MD5 (base64 of the 16-byte digest) in place of
  // the body's own: for callers that hashed the bytes already, and for tests
  // that check the gateway refuses a body that does not match.
  void PutWithContentMd5(const std::string& key, const std::string& bytes, const std::string& content_md5,
                         const Progress& progress = {});

  // The object's bytes. An object larger than max_bytes is refused (kCorrupt,
  // naming its size) from the response headers, before its body is read or
  // anything is allocated for it. A body shorter than its Content-Length, or
  // one whose MD5 differs from an MD5 ETag, is kCorrupt. Missing: kNotFound.
  std::string Get(const std::string& key, uint64_t max_bytes);

  // Bytes [offset, offset + length) of the object, which must all be there:
  // a shorter answer (the object is shorter, or changed) is kCorrupt.
  // Missing: kNotFound. length is bounded by the caller (at most 1 GiB).
  std::string GetRange(const std::string& key, uint64_t offset, uint64_t length);

  // The object's size, or nullopt when there is no such object. A HEAD
  // answer has no body, so a missing bucket looks like a missing object
  // here (Put, Get, List and Delete name NoSuchBucket).
  std::optional<uint64_t> Head(const std::string& key);

  // Removes the object; removing a missing object is no error (S3's rule).
  void Delete(const std::string& key);

  // Every object whose key starts with prefix, in key order, with sizes:
  // page after page until the gateway says the listing is complete. Any page
  // failing (after retries), a truncated page that names nothing to go on
  // from, keys out of order or outside prefix, or a key CheckS3Key refuses
  // is an error: never a partial or empty listing in place of the real one.
  // At most max_keys objects (kCorrupt beyond). page_size: keys asked per
  // request (1 to 1000; tests use small pages).
  std::vector<S3Object> List(const std::string& prefix, int page_size = 1000,
                             uint64_t max_keys = 10'000'000);

  // Whether any object's key starts with prefix (one request, one key). A
  // page marked truncated that holds no key is kCorrupt, never "none".
  bool AnyUnder(const std::string& prefix);

  // One request's state, for libs3's callbacks (s3_client.cpp only).
  struct Request;

 private:
  // Runs one request with the retry policy (each try on its own libs3
  // request context, driven here so that a stalled try can be aborted);
  // what names the request in errors ("S3 PUT bucket/key").
  void Run(const std::string& what, Request* request);

  Env* env_;
  S3Config config_;
  std::string bucket_;
  S3Retry retry_;
  S3RateLimit* upload_limit_ = nullptr;
};

}  // namespace vmback
