#include "s3/s3_client.h"

#include <libs3.h>
#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "os/env.h"
#include "os/fd_wait.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/wipe.h"

namespace vmback {

namespace {

constexpr uint64_t kMaxSinglePut = uint64_t{5} << 30;  // S3's limit of one PUT
constexpr uint64_t kMaxCredentialsFile = 64 << 10;
constexpr size_t kMaxKeyBytes = 1024;

// libs3 keeps process-wide state (curl's global init, its own tables):
// S3_initialize must run once, before any request, and is not thread-safe.
void InitializeLibs3() {
  static std::once_flag once;
  static S3Status status = S3StatusOK;
  std::call_once(once, [] { status = S3_initialize("vmback", S3_INIT_ALL, nullptr); });
  if (status != S3StatusOK) {
    throw Error(ErrorKind::kOther, std::string("S3: libs3 initialization failed: ") + S3_get_status_name(status));
  }
}

std::string Md5(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_md5(), nullptr) != 1 || len != 16) {
    throw Error(ErrorKind::kOther, "S3: MD5 failed");
  }
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string Base64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(n);
  return out;
}

// Statuses worth another try: the connection failed or timed out, or the
// gateway failed (5xx). HttpErrorUnknown is an error response without an S3
// error body whose code libs3 does not map: in practice a proxy's or the
// gateway's 502/503/504 (libs3 2.0 does not say the code). A 4xx with an S3
// error code is never retried. InternalError is libs3's word for a curl
// failure it has no status for: a connection reset while sending (seen when
// radosgw is killed mid-upload), as well as its own rare failures.
bool Retryable(S3Status s) {
  switch (s) {
    case S3StatusInternalError:
    case S3StatusNameLookupError:
    case S3StatusFailedToConnect:
    case S3StatusConnectionFailed:
    case S3StatusInterrupted:
    case S3StatusErrorInternalError:
    case S3StatusErrorSlowDown:
    case S3StatusErrorRequestTimeout:
    case S3StatusErrorIncompleteBody:
    case S3StatusHttpErrorUnknown:
      return true;
    default:
      return false;
  }
}

ErrorKind KindOf(S3Status s) {
  switch (s) {
    case S3StatusErrorNoSuchKey:
    case S3StatusErrorNoSuchBucket:
    case S3StatusHttpErrorNotFound:
      return ErrorKind::kNotFound;
    case S3StatusErrorAccessDenied:
    case S3StatusErrorInvalidAccessKeyId:
    case S3StatusErrorSignatureDoesNotMatch:
    case S3StatusHttpErrorForbidden:
    case S3StatusErrorRequestTimeTooSkewed:
      return ErrorKind::kConfig;
    default:
      return ErrorKind::kIo;
  }
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

void CheckS3Key(const std::string& key) {
  auto refuse = [&](const std::string& why) {
    ThrowConfig("S3 key \"" + EscapeForTerminal(key.substr(0, 200)) + "\": " + why);
  };
  if (key.empty()) refuse("is empty");
  if (key.size() > kMaxKeyBytes) refuse("is longer than " + std::to_string(kMaxKeyBytes) + " bytes");
  if (!IsValidUtf8(key)) refuse("is not valid UTF-8");
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) refuse("has a control character");
  }
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    std::string_view part = std::string_view(key).substr(start, slash == std::string::npos ? key.npos : slash - start);
    if (part.empty()) refuse("has an empty component (a leading '/' or \"//\")");
    if (part == "." || part == "..") refuse("has a \".\" or \"..\" component");
    if (slash == std::string::npos) break;
    start = slash + 1;
    if (start == key.size()) break;  // a trailing '/' ("dir/"): allowed
  }
}

void LoadS3Credentials(Env* env, const std::string& profile_arg, S3Config* config) {
  std::string id = EnvironmentValue("AWS_ACCESS_KEY_ID");
  std::string secret = EnvironmentValue("AWS_SECRET_ACCESS_KEY");
  if (id.empty() != secret.empty()) {
    ThrowConfig("S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together");
  }
  std::string region = EnvironmentValue("AWS_DEFAULT_REGION");
  if (region.empty()) region = EnvironmentValue("AWS_REGION");
  if (!id.empty()) {
    config->access_key = id;
    config->secret_key = secret;
    if (!region.empty()) config->region = region;
    return;
  }

  std::string path = EnvironmentValue("AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) {
    std::string home = EnvironmentValue("HOME");
    if (!home.empty()) path = JoinPath(home, ".aws/credentials");
  }
  std::string profile = profile_arg;
  if (profile.empty()) profile = EnvironmentValue("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  if (path.empty()) {
    ThrowConfig("S3 credentials: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and no HOME for ~/.aws/credentials");
  }
  FileStatus st = env->Status(path);
  if (st.kind == FileKind::kMissing) {
    ThrowConfig("S3 credentials: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and no credentials file " + path);
  }
  if (st.kind != FileKind::kFile) ThrowConfig("S3 credentials file " + path + ": not a regular file (a symlink?)");
  if ((st.mode & 077) != 0) {
    char mode[16];
    snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.mode & 07777));
    ThrowConfig("S3 credentials file " + path + ": readable or writable by group or others (mode " + mode +
                "): chmod 600 it");
  }
  std::string text = ReadFileToString(env, path, kMaxCredentialsFile);
  WipeOnExit wipe(&text);  // it holds the secret key
  std::string section, file_id, file_secret, file_region;
  bool found = false;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = Trim(std::string_view(text).substr(pos, nl == std::string::npos ? text.npos : nl - pos));
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      if (line.back() != ']')
        ThrowConfig("S3 credentials file " + path + " line " + std::to_string(line_no) + ": bad section");
      section = Trim(std::string_view(line).substr(1, line.size() - 2));
      if (section == profile) found = true;
      continue;
    }
    if (section != profile) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      ThrowConfig("S3 credentials file " + path + " line " + std::to_string(line_no) + ": no '='");
    }
    std::string name = Trim(std::string_view(line).substr(0, eq));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (name == "aws_access_key_id") file_id = value;
    if (name == "aws_secret_access_key") file_secret = value;
    if (name == "region") file_region = value;
  }
  if (!found) ThrowConfig("S3 credentials file " + path + ": no profile [" + profile + "]");
  if (file_id.empty() || file_secret.empty()) {
    ThrowConfig("S3 credentials file " + path + ": profile [" + profile +
                "] lacks aws_access_key_id or aws_secret_access_key");
  }
  config->access_key = file_id;
  config->secret_key = file_secret;
  if (!region.empty()) {
    config->region = region;
  } else if (!file_region.empty()) {
    config->region = file_region;
  }
}

// The state of one request across its tries; libs3's callbacks reach it
// through their callbackData. Only the fields of its kind are used.
struct S3Client::Request {
  // Issues the request on ctx (one try).
  std::function<void(S3RequestContext* ctx, const S3BucketContext* bucket)> start;
  // Called before each try: forget what the last one received.
  std::function<void()> reset;
  // Called after a try libs3 reported S3StatusOK; returns "" when the
  // result is whole, else why it is not (a failed try, retried).
  std::function<std::string()> check;

  Clock* clock = nullptr;
  Clock::TimePoint last_activity;
  bool completed = false;
  S3Status status = S3StatusOK;
  std::string message;  // the gateway's error message, if any
  std::optional<Error> refusal;  // decided in a callback: not retried

  // PUT
  S3RateLimit* limit = nullptr;
  const std::string* body = nullptr;
  uint64_t sent = 0;
  const Progress* progress = nullptr;
  // GET
  std::string* out = nullptr;
  uint64_t max_bytes = 0;
  std::optional<uint64_t> length;  // Content-Length, HEAD's answer too
  std::string etag;
  // LIST
  std::vector<S3Object>* page = nullptr;
  bool truncated = false;
  std::string next_marker;

  void Touch() { last_activity = clock->Now(); }
};

namespace {

using Request = S3Client::Request;

S3Status OnProperties(const S3ResponseProperties* p, void* data) {
  auto* r = static_cast<Request*>(data);
  r->Touch();
  r->length = p->contentLength;
  r->etag = p->eTag ? p->eTag : "";
  if (r->out != nullptr) {
    if (p->contentLength > r->max_bytes) {
      r->refusal = Error(ErrorKind::kCorrupt, "is " + std::to_string(p->contentLength) +
                                                  " bytes, more than the " + std::to_string(r->max_bytes) +
                                                  " allowed: refused before reading it");
      return S3StatusAbortedByCallback;
    }
    r->out->reserve(p->contentLength);
  }
  return S3StatusOK;
}

void OnComplete(S3Status status, const S3ErrorDetails* details, void* data) {
  auto* r = static_cast<Request*>(data);
  r->completed = true;
  r->status = status;
  if (details != nullptr && details->message != nullptr) r->message = details->message;
}

int OnPutData(int size, char* buffer, void* data) {
  auto* r = static_cast<Request*>(data);
  r->Touch();
  uint64_t left = r->body->size() - r->sent;
  size_t n = static_cast<size_t>(std::min<uint64_t>(left, static_cast<uint64_t>(size)));
  if (r->limit != nullptr && n > 0) {
    // Waits here, inside the request: the gateway sees a slow sender, and
    // the wait is no stall (the clock of the stall timeout starts after).
    auto wait = r->limit->Take(n, std::chrono::steady_clock::now());
    if (wait.count() > 0) r->clock->SleepFor(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
    r->Touch();
  }
  std::copy_n(r->body->data() + r->sent, n, buffer);
  r->sent += n;
  if (n > 0 && r->progress != nullptr && *r->progress) (*r->progress)(r->sent);
  return static_cast<int>(n);
}

S3Status OnGetData(int size, const char* buffer, void* data) {
  auto* r = static_cast<Request*>(data);
  r->Touch();
  if (r->out->size() + static_cast<uint64_t>(size) > r->max_bytes) {
    r->refusal = Error(ErrorKind::kCorrupt, "sent more than the " + std::to_string(r->max_bytes) +
                                                " bytes allowed: refused");
    return S3StatusAbortedByCallback;
  }
  r->out->append(buffer, size);
  return S3StatusOK;
}

S3Status OnListPage(int is_truncated, const char* next_marker, int count, const S3ListBucketContent* contents,
                    int prefixes_count, const char** prefixes, void* data) {
  auto* r = static_cast<Request*>(data);
  r->Touch();
  r->truncated = is_truncated != 0;
  if (next_marker != nullptr && *next_marker) r->next_marker = next_marker;
  for (int i = 0; i < count; ++i) {
    r->page->push_back(S3Object{contents[i].key ? contents[i].key : "", contents[i].size});
  }
  return S3StatusOK;
}

const S3ResponseHandler kResponseHandler = {&OnProperties, &OnComplete};

}  // namespace

S3Client::S3Client(Env* env, S3Config config, std::string bucket, S3Retry retry)
    : env_(env), config_(std::move(config)), bucket_(std::move(bucket)), retry_(retry) {
  InitializeLibs3();
  if (config_.endpoint.empty() || config_.endpoint.size() > S3_MAX_HOSTNAME_SIZE ||
      config_.endpoint.find_first_of("/ \t\r\n") != std::string::npos) {
    ThrowConfig("S3 endpoint \"" + EscapeForTerminal(config_.endpoint) + "\": not host or host:port");
  }
  S3UriStyle style = config_.addressing == S3Addressing::kPath ? S3UriStylePath : S3UriStyleVirtualHost;
  if (S3Status s = S3_validate_bucket_name(bucket_.c_str(), style); s != S3StatusOK) {
    ThrowConfig("S3 bucket \"" + EscapeForTerminal(bucket_) + "\": " + S3_get_status_name(s));
  }
  if (config_.access_key.empty() || config_.secret_key.empty()) {
    ThrowConfig("S3 bucket " + bucket_ + " at " + config_.endpoint + ": no access key or secret key");
  }
  if (retry_.max_tries < 1) retry_.max_tries = 1;
}

void S3Client::Run(const std::string& what, Request* r) {
  Clock* clock = env_->clock();
  r->clock = clock;
  S3BucketContext bucket{};
  bucket.hostName = config_.endpoint.c_str();
  bucket.bucketName = bucket_.c_str();
  bucket.protocol = config_.scheme == S3Scheme::kHttps ? S3ProtocolHTTPS : S3ProtocolHTTP;
  bucket.uriStyle = config_.addressing == S3Addressing::kPath ? S3UriStylePath : S3UriStyleVirtualHost;
  bucket.accessKeyId = config_.access_key.c_str();
  bucket.secretAccessKey = config_.secret_key.c_str();

  const auto first = clock->Now();
  auto backoff = retry_.first_backoff;
  for (int attempt = 1;; ++attempt) {
    r->completed = false;
    r->status = S3StatusInternalError;
    r->message.clear();
    r->refusal.reset();
    if (r->reset) r->reset();

    S3RequestContext* raw = nullptr;
    if (S3Status s = S3_create_request_context(&raw); s != S3StatusOK) {
      throw Error(ErrorKind::kOther, what + ": libs3 request context: " + S3_get_status_name(s));
    }
    // Destroying the context aborts a request still under way (its complete
    // callback then says S3StatusInterrupted).
    std::unique_ptr<S3RequestContext, void (*)(S3RequestContext*)> ctx(raw, &S3_destroy_request_context);
    r->Touch();
    r->start(ctx.get(), &bucket);
    bool stalled = false;
    while (true) {
      int remaining = 0;
      if (S3Status s = S3_runonce_request_context(ctx.get(), &remaining); s != S3StatusOK) {
        r->completed = true;
        r->status = s;
        break;
      }
      if (remaining == 0) break;
      if (clock->Now() - r->last_activity > retry_.stall_timeout) {
        stalled = true;
        break;
      }
      fd_set rd, wr, ex;
      FD_ZERO(&rd);
      FD_ZERO(&wr);
      FD_ZERO(&ex);
      int max_fd = -1;
      S3_get_request_context_fdsets(ctx.get(), &rd, &wr, &ex, &max_fd);
      int64_t ms = S3_get_request_context_timeout(ctx.get());
      if (ms < 0 || ms > 100) ms = 100;  // wake up to check the stall timeout
      WaitForDescriptors(max_fd + 1, &rd, &wr, &ex, std::chrono::milliseconds(ms), "S3 request");
    }
    ctx.reset();

    std::string why;
    bool retryable = false;
    if (r->refusal) {
      throw Error(r->refusal->kind(), what + ": " + r->refusal->what());
    } else if (stalled) {
      why = "no byte moved for " + std::to_string(retry_.stall_timeout.count()) + " s (timed out)";
      retryable = true;
    } else if (!r->completed) {
      why = "the request did not complete";
      retryable = true;
    } else if (r->status == S3StatusOK) {
      why = r->check ? r->check() : "";
      if (why.empty()) return;
      retryable = true;
    } else {
      why = S3_get_status_name(r->status);
      if (!r->message.empty()) why += " (" + EscapeForTerminal(r->message.substr(0, 500)) + ")";
      retryable = Retryable(r->status);
      if (!retryable) throw Error(KindOf(r->status), what + ": " + why);
    }
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock->Now() - first);
    if (attempt >= retry_.max_tries || clock->Now() + backoff > first + retry_.deadline) {
      throw Error(ErrorKind::kIo, what + ": " + why + " (gave up after " + std::to_string(attempt) + " tries in " +
                                      FormatSeconds(elapsed.count() / 1000.0) + ")");
    }
    clock->SleepFor(backoff);
    backoff = std::min(backoff * 2, retry_.max_backoff);
  }
}

void S3Client::Put(const std::string& key, const std::string& bytes, const Progress& progress) {
  PutWithContentMd5(key, bytes, Base64(Md5(bytes)), progress);
}

void S3Client::PutWithContentMd5(const std::string& key, const std::string& bytes, const std::string& content_md5,
                                 const Progress& progress) {
  CheckS3Key(key);
  std::string what = "S3 PUT " + bucket_ + "/" + EscapeForTerminal(key);
  if (bytes.size() > kMaxSinglePut) {
    ThrowConfig(what + ": " + std::to_string(bytes.size()) +
                " bytes is more than one PUT takes (5 GiB; libs3 2.0 has no multipart upload)");
  }
  Request r;
  r.limit = upload_limit_;
  r.body = &bytes;
  r.progress = &progress;
  r.reset = [&r] { r.sent = 0; };
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    S3PutProperties props{};
    props.md5 = content_md5.c_str();
    props.expires = -1;
    props.cannedAcl = S3CannedAclPrivate;
    static const S3PutObjectHandler handler = {kResponseHandler, &OnPutData};
    S3_put_object(bucket, key.c_str(), bytes.size(), &props, ctx, &handler, &r);
  };
  Run(what, &r);
}

std::string S3Client::Get(const std::string& key, uint64_t max_bytes) {
  CheckS3Key(key);
  std::string what = "S3 GET " + bucket_ + "/" + EscapeForTerminal(key);
  std::string out;
  Request r;
  r.out = &out;
  r.max_bytes = max_bytes;
  r.reset = [&] {
    out.clear();
    r.length.reset();
    r.etag.clear();
  };
  r.check = [&]() -> std::string {
    // libs3 says 0 for a response without Content-Length (chunked): only a
    // length given is checked; max_bytes bounds the body either way.
    if (r.length && *r.length != 0 && *r.length != out.size()) {
      return "got " + std::to_string(out.size()) + " of " + std::to_string(*r.length) + " bytes";
    }
    // A single PUT's ETag is the hex MD5 of the object ("..."); a multipart
    // one has a "-N" suffix and says nothing of the bytes.
    std::string etag = r.etag;
    if (etag.size() == 34 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, 32);
    if (etag.size() == 32 && etag.find_first_not_of("0123456789abcdef") == std::string::npos &&
        etag != HexEncode(Md5(out))) {
      return "the bytes received do not match the object's MD5 ETag";
    }
    return "";
  };
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    static const S3GetObjectHandler handler = {kResponseHandler, &OnGetData};
    S3_get_object(bucket, key.c_str(), nullptr, 0, 0, ctx, &handler, &r);
  };
  Run(what, &r);
  return out;
}

std::string S3Client::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  CheckS3Key(key);
  constexpr uint64_t kMaxRange = uint64_t{1} << 30;
  std::string what = "S3 GET " + bucket_ + "/" + EscapeForTerminal(key) + " bytes " + std::to_string(offset) + "+" +
                     std::to_string(length);
  if (length == 0) return {};
  if (length > kMaxRange) throw Error(ErrorKind::kOther, what + ": internal: a range above 1 GiB");
  std::string out;
  Request r;
  r.out = &out;
  r.max_bytes = length;
  r.reset = [&] {
    out.clear();
    r.length.reset();
  };
  r.check = [&]() -> std::string {
    if (out.size() != length) return "got " + std::to_string(out.size()) + " of " + std::to_string(length) + " bytes";
    return "";
  };
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    static const S3GetObjectHandler handler = {kResponseHandler, &OnGetData};
    S3_get_object(bucket, key.c_str(), nullptr, offset, length, ctx, &handler, &r);
  };
  try {
    Run(what, &r);
  } catch (const Error& e) {
    // A range past the end: the object is not what the listing said.
    if (e.kind() == ErrorKind::kIo && r.status == S3StatusErrorInvalidRange)
      throw Error(ErrorKind::kCorrupt, std::string(e.what()) + ": the object is shorter");
    throw;
  }
  // A short answer after every try: the object is shorter than asked.
  return out;
}

bool S3Client::AnyUnder(const std::string& prefix) {
  CheckS3Key(prefix);
  std::vector<S3Object> page;
  Request r;
  r.page = &page;
  r.reset = [&] { page.clear(); };
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    static const S3ListBucketHandler handler = {kResponseHandler, &OnListPage};
    S3_list_bucket(bucket, prefix.c_str(), nullptr, nullptr, 1, ctx, &handler, &r);
  };
  const std::string what = "S3 LIST " + bucket_ + "/" + EscapeForTerminal(prefix) + "*";
  Run(what, &r);
  for (const S3Object& o : page)
    if (o.key.compare(0, prefix.size(), prefix) == 0) return true;
  // A page that says more follows but holds nothing is no answer.
  if (r.truncated) ThrowCorrupt(what + ": the listing is truncated but names nothing");
  return false;
}

std::optional<uint64_t> S3Client::Head(const std::string& key) {
  CheckS3Key(key);
  Request r;
  r.reset = [&] { r.length.reset(); };
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    S3_head_object(bucket, key.c_str(), ctx, &kResponseHandler, &r);
  };
  try {
    Run("S3 HEAD " + bucket_ + "/" + EscapeForTerminal(key), &r);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kNotFound && r.status != S3StatusErrorNoSuchBucket) return std::nullopt;
    throw;
  }
  if (!r.length) throw Error(ErrorKind::kIo, "S3 HEAD " + bucket_ + "/" + EscapeForTerminal(key) + ": no size");
  return r.length;
}

void S3Client::Delete(const std::string& key) {
  CheckS3Key(key);
  Request r;
  r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
    S3_delete_object(bucket, key.c_str(), ctx, &kResponseHandler, &r);
  };
  try {
    Run("S3 DELETE " + bucket_ + "/" + EscapeForTerminal(key), &r);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kNotFound && r.status != S3StatusErrorNoSuchBucket) return;
    throw;
  }
}

std::vector<S3Object> S3Client::List(const std::string& prefix, int page_size, uint64_t max_keys) {
  if (!prefix.empty()) CheckS3Key(prefix);
  page_size = std::clamp(page_size, 1, 1000);
  std::string what = "S3 LIST " + bucket_ + "/" + EscapeForTerminal(prefix) + "*";
  std::vector<S3Object> all;
  std::vector<S3Object> page;
  std::string marker;
  for (int n = 1;; ++n) {
    Request r;
    r.page = &page;
    r.reset = [&] {
      page.clear();
      r.truncated = false;
      r.next_marker.clear();
    };
    r.start = [&](S3RequestContext* ctx, const S3BucketContext* bucket) {
      static const S3ListBucketHandler handler = {kResponseHandler, &OnListPage};
      S3_list_bucket(bucket, prefix.empty() ? nullptr : prefix.c_str(), marker.empty() ? nullptr : marker.c_str(),
                     nullptr, page_size, ctx, &handler, &r);
    };
    std::string page_what =
        what + " page " + std::to_string(n) + (marker.empty() ? "" : " after " + EscapeForTerminal(marker));
    Run(page_what, &r);
    for (S3Object& o : page) {
      if (o.key.compare(0, prefix.size(), prefix) != 0) {
        ThrowCorrupt(page_what + ": key \"" + EscapeForTerminal(o.key) + "\" is outside the prefix");
      }
      if (!all.empty() ? o.key <= all.back().key : (!marker.empty() && o.key <= marker)) {
        ThrowCorrupt(page_what + ": key \"" + EscapeForTerminal(o.key) + "\" is out of order");
      }
      try {
        CheckS3Key(o.key);
      } catch (const Error& e) {
        ThrowCorrupt(page_what + ": " + e.what());
      }
      if (all.size() >= max_keys) ThrowCorrupt(what + ": more than " + std::to_string(max_keys) + " objects");
      all.push_back(std::move(o));
    }
    if (!r.truncated) return all;
    // Without a delimiter S3 gives no NextMarker: go on after the last key.
    std::string next = !r.next_marker.empty() ? r.next_marker : (page.empty() ? "" : all.back().key);
    if (next.empty() || next <= marker) {
      ThrowCorrupt(page_what + ": the listing is truncated but names nothing to go on from");
    }
    marker = next;
  }
}

std::chrono::nanoseconds S3RateLimit::Take(uint64_t n, std::chrono::steady_clock::time_point now) {
  if (rate_ == 0) return {};
  std::lock_guard<std::mutex> l(mu_);
  // Credit of at most one second: a sender idle for an hour gets no burst
  // of an hour's worth.
  if (next_ < now - std::chrono::seconds(1)) next_ = now - std::chrono::seconds(1);
  const auto cost = std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(n) * 1e9 / rate_));
  next_ += cost;
  return next_ > now ? std::chrono::duration_cast<std::chrono::nanoseconds>(next_ - now) : std::chrono::nanoseconds{};
}

}  // namespace vmback
