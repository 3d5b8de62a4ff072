#include "s3/bucket_env.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr uint64_t kMaxHeldFile = uint64_t{2} << 30;   // a file written to a bucket is held in memory
constexpr uint64_t kMaxMovedObject = uint64_t{1} << 30;  // Rename of an object already there: GET + PUT
constexpr uint64_t kMaxLockObject = 4096;
constexpr uint64_t kMinWindow = uint64_t{1} << 20;
constexpr uint64_t kMaxWindow = uint64_t{8} << 20;

bool IsTempName(const std::string& key) { return BaseName(key).find(".tmp-") != std::string::npos; }

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::string Url(const std::string& bucket, const std::string& key) { return "s3://" + bucket + "/" + key; }

}  // namespace

BucketUrl ParseBucketUrl(const std::string& url) {
  if (!IsBucketUrl(url)) ThrowConfig("\"" + EscapeForTerminal(url) + "\" is not a bucket URL (s3://BUCKET/PREFIX)");
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  BucketUrl out;
  out.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) out.key = rest.substr(slash + 1);
  while (!out.key.empty() && out.key.back() == '/') out.key.pop_back();
  if (out.bucket.empty()) ThrowConfig(EscapeForTerminal(url) + ": no bucket (s3://BUCKET/PREFIX)");
  if (out.key.empty())
    ThrowConfig(EscapeForTerminal(url) + ": give a prefix below the bucket (s3://" + EscapeForTerminal(out.bucket) +
                "/PREFIX, e.g. the host's name), so that several stores can share the bucket");
  CheckS3Key(out.key);
  return out;
}

BucketSettings BucketSettingsFrom(Env* env, const std::string& endpoint_url, const std::string& profile,
                                  const std::string& addressing) {
  BucketSettings out;
  std::string url = endpoint_url.empty() ? EnvironmentValue("AWS_ENDPOINT_URL") : endpoint_url;
  if (url.empty())
    ThrowConfig("a bucket copy needs the S3 endpoint: set [s3] endpoint in the config or AWS_ENDPOINT_URL "
                "(e.g. http://rgw.example:7480)");
  if (StartsWith(url, "http://")) {
    out.s3.scheme = S3Scheme::kHttp;
    url = url.substr(7);
  } else if (StartsWith(url, "https://")) {
    url = url.substr(8);
  } else if (url.find("://") != std::string::npos) {
    ThrowConfig("S3 endpoint \"" + EscapeForTerminal(url) + "\": the scheme must be http:// or https://");
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  out.s3.endpoint = url;
  if (addressing.empty() || addressing == "path") {
    out.s3.addressing = S3Addressing::kPath;
  } else if (addressing == "virtual") {
    out.s3.addressing = S3Addressing::kVirtualHost;
  } else {
    ThrowConfig("S3 addressing \"" + EscapeForTerminal(addressing) + "\": \"path\" or \"virtual\"");
  }
  LoadS3Credentials(env, profile, &out.s3);
  return out;
}

// One bucket: its client, and what this process knows of its keys.
class BucketEnv::Bucket {
 public:
  Bucket(Env* env, std::unique_ptr<S3Client> client) : env_(env), client_(std::move(client)) {}
  S3Client* client() { return client_.get(); }
  const std::string& name() const { return client_->bucket(); }
  Env* env() { return env_; }

  // Whether a listing covers key: a listed prefix is a prefix of it.
  bool CoveredLocked(const std::string& key) const {
    if (listed_.count("")) return true;
    for (size_t i = key.find('/'); i != std::string::npos; i = key.find('/', i + 1))
      if (listed_.count(key.substr(0, i + 1))) return true;
    return false;
  }
  bool AnyUnderLocked(const std::string& prefix) const {
    auto it = objects_.lower_bound(prefix);
    return it != objects_.end() && StartsWith(it->first, prefix);
  }

  FileStatus Status(const std::string& key) {
    FileStatus st;
    const std::string dir = key + "/";
    {
      std::lock_guard<std::mutex> l(mu_);
      if (auto p = pending_.find(key); p != pending_.end()) return FileOf(p->second->size());
      if (CoveredLocked(key)) {
        if (auto o = objects_.find(key); o != objects_.end()) return FileOf(o->second);
        if (AnyUnderLocked(dir)) return DirOf();
        return st;
      }
      if (listed_.count(dir) && AnyUnderLocked(dir)) return DirOf();
    }
    if (auto size = Count(&heads_, [&] { return client_->Head(key); })) {
      Remember(key, *size);
      return FileOf(*size);
    }
    if (Count(&lists_, [&] { return client_->AnyUnder(dir); })) return DirOf();
    // Nothing below it: that is a whole listing of dir, kept like any other
    // (a new copy's layout is then made without asking again).
    std::lock_guard<std::mutex> l(mu_);
    listed_.insert(dir);
    return st;
  }

  std::vector<std::string> ListDir(const std::string& key) {
    const std::string dir = key + "/";
    bool covered;
    {
      std::lock_guard<std::mutex> l(mu_);
      covered = CoveredLocked(dir);
    }
    if (!covered) {
      std::vector<S3Object> all = Count(&lists_, [&] { return client_->List(dir); });
      std::lock_guard<std::mutex> l(mu_);
      for (auto it = objects_.lower_bound(dir); it != objects_.end() && StartsWith(it->first, dir);)
        it = objects_.erase(it);
      for (auto it = listed_.lower_bound(dir); it != listed_.end() && StartsWith(*it, dir);) it = listed_.erase(it);
      for (auto& o : all) objects_[o.key] = o.size;
      listed_.insert(dir);
    }
    std::lock_guard<std::mutex> l(mu_);
    std::set<std::string> names;
    bool exists = false;
    auto add = [&](const std::string& k) {
      exists = true;
      std::string rest = k.substr(dir.size());
      if (rest.empty()) return;  // the directory's own marker
      names.insert(rest.substr(0, rest.find('/')));
    };
    for (auto it = objects_.lower_bound(dir); it != objects_.end() && StartsWith(it->first, dir); ++it) add(it->first);
    for (auto it = pending_.lower_bound(dir); it != pending_.end() && StartsWith(it->first, dir); ++it) add(it->first);
    if (!exists) ThrowNotFound("list " + Url(name(), key) + ": no such directory (nothing below it in the bucket)");
    return {names.begin(), names.end()};
  }

  uint64_t SizeOf(const std::string& key) {
    FileStatus st = Status(key);
    if (st.kind != FileKind::kFile) ThrowNotFound("open " + Url(name(), key) + ": no such object");
    return st.size;
  }

  // A file held until renamed (temporary names) or sent at once.
  void Hold(const std::string& key, std::string bytes) {
    if (!IsTempName(key)) {
      Put(key, bytes);
      return;
    }
    std::lock_guard<std::mutex> l(mu_);
    pending_[key] = std::make_shared<const std::string>(std::move(bytes));
  }
  std::shared_ptr<const std::string> Held(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pending_.find(key);
    return it == pending_.end() ? nullptr : it->second;
  }
  bool DropHeld(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    return pending_.erase(key) > 0;
  }

  void Put(const std::string& key, const std::string& bytes) {
    Count(&puts_, [&] { client_->Put(key, bytes); });
    put_bytes_ += bytes.size();
    Remember(key, bytes.size());
  }
  std::string GetRange(const std::string& key, uint64_t offset, uint64_t length, uint64_t size) {
    std::string out = Count(&gets_, [&] {
      // The whole object: its MD5 ETag is checked too.
      return offset == 0 && length == size ? client_->Get(key, size) : client_->GetRange(key, offset, length);
    });
    if (out.size() != length)
      ThrowCorrupt(Url(name(), key) + ": " + std::to_string(out.size()) + " bytes where " + std::to_string(length) +
                   " were expected (the object changed or is shorter than listed)");
    get_bytes_ += out.size();
    return out;
  }
  void Delete(const std::string& key) {
    Count(&deletes_, [&] { client_->Delete(key); });
    std::lock_guard<std::mutex> l(mu_);
    objects_.erase(key);
  }
  void Remember(const std::string& key, uint64_t size) {
    std::lock_guard<std::mutex> l(mu_);
    objects_[key] = size;
  }
  void AddStats(Stats* s) const {
    s->puts += puts_;
    s->put_bytes += put_bytes_;
    s->gets += gets_;
    s->get_bytes += get_bytes_;
    s->heads += heads_;
    s->lists += lists_;
    s->deletes += deletes_;
  }
  // Every key below prefix (a listing of its own, not kept).
  std::vector<S3Object> ListAll(const std::string& prefix) {
    return Count(&lists_, [&] { return client_->List(prefix); });
  }

 private:
  static FileStatus FileOf(uint64_t size) {
    FileStatus st;
    st.kind = FileKind::kFile;
    st.mode = 0600;
    st.type = 0100000;  // S_IFREG
    st.nlink = 1;
    st.size = size;
    return st;
  }
  static FileStatus DirOf() {
    FileStatus st;
    st.kind = FileKind::kDir;
    st.mode = 0700;
    st.type = 0040000;  // S_IFDIR
    st.nlink = 1;
    return st;
  }
  template <typename Fn>
  auto Count(std::atomic<uint64_t>* counter, Fn fn) -> decltype(fn()) {
    (*counter)++;
    return fn();
  }

  Env* env_;
  std::unique_ptr<S3Client> client_;
  std::mutex mu_;
  std::map<std::string, uint64_t> objects_;  // keys known: listed, or written by this process
  std::set<std::string> listed_;             // prefixes ("a/b/") listed whole
  std::map<std::string, std::shared_ptr<const std::string>> pending_;  // temporary names, held
  std::atomic<uint64_t> puts_{0}, put_bytes_{0}, gets_{0}, get_bytes_{0}, lists_{0}, deletes_{0}, heads_{0};
};

namespace {

using Bucket = BucketEnv::Bucket;

// Reads an object a window at a time. ReadAt may come from several threads
// (the store shares open packs): one at a time.
class BucketReadFile final : public ReadableFile {
 public:
  BucketReadFile(Bucket* bucket, std::string key, uint64_t size, std::string path)
      : bucket_(bucket), key_(std::move(key)), size_(size), path_(std::move(path)) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    if (offset >= size_) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
    size_t done = 0;
    while (done < n) {
      const uint64_t at = offset + done;
      if (at < window_off_ || at >= window_off_ + window_.size()) {
        // Sequential reads grow the window, as the kernel's readahead does.
        window_size_ = at == window_off_ + window_.size() ? std::min(window_size_ * 2, kMaxWindow) : kMinWindow;
        const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(window_size_, n - done), size_ - at);
        const uint64_t len = std::min<uint64_t>(want, kMaxWindow * 8);
        window_ = bucket_->GetRange(key_, at, len, size_);
        window_off_ = at;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n - done, window_off_ + window_.size() - at));
      std::memcpy(static_cast<char*>(buf) + done, window_.data() + (at - window_off_), take);
      done += take;
    }
    return n;
  }
  uint64_t Size() override { return size_; }
  uint64_t NextData(uint64_t offset) override { return std::min(offset, size_); }
  uint64_t NextHole(uint64_t) override { return size_; }
  void DropCache(uint64_t, uint64_t) override {
    std::lock_guard<std::mutex> l(mu_);
    window_.clear();
    window_.shrink_to_fit();
  }
  const std::string& path() const override { return path_; }

 private:
  Bucket* bucket_;
  const std::string key_;
  const uint64_t size_;
  const std::string path_;
  std::mutex mu_;
  std::string window_;
  uint64_t window_off_ = 0;
  uint64_t window_size_ = kMinWindow;
};

// A held file being read (a temporary one, not yet renamed).
class HeldReadFile final : public ReadableFile {
 public:
  HeldReadFile(std::shared_ptr<const std::string> bytes, std::string path)
      : bytes_(std::move(bytes)), path_(std::move(path)) {}
  size_t ReadAt(uint64_t offset, void* buf, size_t n) override {
    if (offset >= bytes_->size()) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, bytes_->size() - offset));
    std::memcpy(buf, bytes_->data() + offset, n);
    return n;
  }
  uint64_t Size() override { return bytes_->size(); }
  uint64_t NextData(uint64_t offset) override { return std::min<uint64_t>(offset, bytes_->size()); }
  uint64_t NextHole(uint64_t) override { return bytes_->size(); }
  void DropCache(uint64_t, uint64_t) override {}
  const std::string& path() const override { return path_; }

 private:
  std::shared_ptr<const std::string> bytes_;
  const std::string path_;
};

class BucketWriteFile final : public WritableFile {
 public:
  BucketWriteFile(Bucket* bucket, std::string key, std::string path)
      : bucket_(bucket), key_(std::move(key)), path_(std::move(path)) {}
  void Append(const void* data, size_t n) override { WriteAt(bytes_.size(), data, n); }
  void WriteAt(uint64_t offset, const void* data, size_t n) override {
    if (closed_) throw Error(ErrorKind::kOther, "internal: write to " + path_ + " after close");
    if (offset + n > kMaxHeldFile)
      throw Error(ErrorKind::kOther, "write " + path_ + ": a file sent to a bucket is at most 2 GiB");
    if (offset + n > bytes_.size()) bytes_.resize(offset + n);
    std::memcpy(bytes_.data() + offset, data, n);
  }
  void Truncate(uint64_t size) override {
    if (size > kMaxHeldFile) throw Error(ErrorKind::kOther, "truncate " + path_ + ": above 2 GiB");
    bytes_.resize(size);
  }
  void Sync() override {}  // the PUT at Close (or Rename) is what makes it durable
  void ExpectSize(uint64_t bytes) override { bytes_.reserve(std::min(bytes, kMaxHeldFile)); }
  void Close() override {
    if (closed_) return;
    closed_ = true;
    bucket_->Hold(key_, std::move(bytes_));
  }
  const std::string& path() const override { return path_; }

 private:
  Bucket* bucket_;
  const std::string key_;
  const std::string path_;
  std::string bytes_;
  bool closed_ = false;
};

struct LockHolder {
  std::string host;
  int pid = 0;
  std::string token;
  int64_t expires_ns = 0;
};

std::string EncodeHolder(const LockHolder& h) {
  return nlohmann::json{{"vmback_lock", 1}, {"host", h.host}, {"pid", h.pid}, {"token", h.token},
                        {"expires", FormatTimeUtc(h.expires_ns)}, {"expires_ns", h.expires_ns}}
             .dump() +
         "\n";
}

// The holder in a lock object; nullopt when it is not one vmback wrote.
std::optional<LockHolder> DecodeHolder(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    LockHolder h;
    if (j.value("vmback_lock", 0) != 1) return std::nullopt;
    h.host = j.at("host").get<std::string>();
    h.pid = j.at("pid").get<int>();
    h.token = j.at("token").get<std::string>();
    h.expires_ns = j.at("expires_ns").get<int64_t>();
    if (h.host.size() > 255 || h.token.size() != 32) return std::nullopt;
    return h;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

// A lock object held: renewed by a thread while held, deleted when released
// (if it is still this holder's).
class BucketLock final : public FileLock {
 public:
  BucketLock(Bucket* bucket, std::string key, LockHolder me, std::chrono::seconds lease)
      : bucket_(bucket), key_(std::move(key)), me_(std::move(me)), lease_(lease) {
    renewer_ = std::thread([this] { Renew(); });
  }
  ~BucketLock() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    renewer_.join();
    try {
      auto held = DecodeHolder(bucket_->client()->Get(key_, kMaxLockObject));
      if (held && held->token == me_.token) bucket_->Delete(key_);
    } catch (const Error&) {
      // Best effort: the lease ends by itself.
    }
  }

 private:
  void Renew() {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, lease_ / 4, [this] { return stop_; })) {
      l.unlock();
      try {
        auto held = DecodeHolder(bucket_->client()->Get(key_, kMaxLockObject));
        if (held && held->token == me_.token) {
          me_.expires_ns = bucket_->env()->NowNanos() + std::chrono::nanoseconds(lease_).count();
          bucket_->Put(key_, EncodeHolder(me_));
        }
      } catch (const Error&) {
        // Tried again at the next quarter of the lease.
      }
      l.lock();
    }
  }

  Bucket* bucket_;
  const std::string key_;
  LockHolder me_;
  const std::chrono::seconds lease_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread renewer_;
};

BucketEnv::BucketEnv(Env* target, std::function<BucketSettings()> settings)
    : EnvWrapper(target), settings_fn_(std::move(settings)) {}

BucketEnv::~BucketEnv() = default;

void BucketEnv::Configure(std::function<BucketSettings()> settings) {
  std::lock_guard<std::mutex> l(mu_);
  settings_fn_ = std::move(settings);
  settings_.reset();
  buckets_.clear();
}

BucketEnv::Bucket* BucketEnv::BucketOf(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  if (!settings_) {
    if (!settings_fn_) ThrowConfig("bucket URLs are not available here");
    settings_ = std::make_unique<BucketSettings>(settings_fn_());
    if (settings_->upload_limit > 0) upload_limit_ = std::make_unique<S3RateLimit>(settings_->upload_limit);
  }
  auto& b = buckets_[name];
  if (!b) {
    auto client = std::make_unique<S3Client>(target(), settings_->s3, name, settings_->retry);
    client->set_upload_limit(upload_limit_.get());
    b = std::make_unique<Bucket>(target(), std::move(client));
  }
  return b.get();
}

BucketEnv::Located BucketEnv::Locate(const std::string& path) {
  BucketUrl url = ParseBucketUrl(path);
  return {BucketOf(url.bucket), url.key};
}

void BucketEnv::Unsupported(const std::string& what, const std::string& path) const {
  ThrowConfig(what + " " + EscapeForTerminal(path) + ": a bucket has no such thing (a copy in a bucket holds only "
                                                     "the store's files)");
}

BucketEnv::Stats BucketEnv::stats() const {
  Stats s;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [name, b] : buckets_) b->AddStats(&s);
  return s;
}

std::unique_ptr<ReadableFile> BucketEnv::OpenRead(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::OpenRead(path);
  auto [b, key] = Locate(path);
  if (auto held = b->Held(key)) return std::make_unique<HeldReadFile>(held, path);
  return std::make_unique<BucketReadFile>(b, key, b->SizeOf(key), path);
}

std::unique_ptr<WritableFile> BucketEnv::OpenWrite(const std::string& path, CreateMode mode, mode_t perm) {
  if (!IsBucketUrl(path)) return EnvWrapper::OpenWrite(path, mode, perm);
  auto [b, key] = Locate(path);
  if (mode == CreateMode::kExisting) Unsupported("write in place", path);
  // A temporary name is random: asking the gateway whether it is taken
  // would cost a request per file for nothing.
  if (mode == CreateMode::kExclusive && !IsTempName(key) && b->Status(key).kind != FileKind::kMissing)
    throw Error(ErrorKind::kOther, "create " + path + ": it exists");
  return std::make_unique<BucketWriteFile>(b, key, path);
}

void BucketEnv::Rename(const std::string& from, const std::string& to) {
  if (!IsBucketUrl(from) && !IsBucketUrl(to)) return EnvWrapper::Rename(from, to);
  if (IsBucketUrl(from) != IsBucketUrl(to))
    throw Error(ErrorKind::kOther, "rename " + from + " to " + to + ": not between a bucket and a disk");
  auto [b, key] = Locate(from);
  auto [b2, to_key] = Locate(to);
  if (b != b2) throw Error(ErrorKind::kOther, "rename " + from + " to " + to + ": not between buckets");
  if (auto held = b->Held(key)) {
    b->Put(to_key, *held);
    b->DropHeld(key);
    return;
  }
  const uint64_t size = b->SizeOf(key);
  if (size > kMaxMovedObject)
    throw Error(ErrorKind::kOther, "rename " + from + ": an object above 1 GiB is not moved in a bucket");
  std::string bytes = b->GetRange(key, 0, size, size);
  b->Put(to_key, bytes);
  b->Delete(key);
}

void BucketEnv::Remove(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::Remove(path);
  auto [b, key] = Locate(path);
  if (b->DropHeld(key)) return;
  b->Delete(key);
}

void BucketEnv::MakeDir(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::MakeDir(path);
  auto [b, key] = Locate(path);
  FileStatus st = b->Status(key);
  if (st.kind == FileKind::kDir) return;
  if (st.kind != FileKind::kMissing) throw Error(ErrorKind::kOther, "mkdir " + path + ": an object is there");
  b->Put(key + "/", "");
}

void BucketEnv::MakeNewDir(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::MakeNewDir(path);
  auto [b, key] = Locate(path);
  if (b->Status(key).kind != FileKind::kMissing) throw Error(ErrorKind::kOther, "mkdir " + path + ": it exists");
  b->Put(key + "/", "");
}

void BucketEnv::RemoveDir(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::RemoveDir(path);
  auto [b, key] = Locate(path);
  if (!ListDir(path).empty()) throw Error(ErrorKind::kOther, "rmdir " + path + ": not empty");
  b->Delete(key + "/");
}

uint64_t BucketEnv::RemoveTree(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::RemoveTree(path);
  auto [b, key] = Locate(path);
  uint64_t n = 0;
  for (const auto& o : b->ListAll(key + "/")) {
    b->Delete(o.key);
    n++;
  }
  if (b->Status(key).kind == FileKind::kFile) {
    b->Delete(key);
    n++;
  }
  return n;
}

void BucketEnv::SyncDir(const std::string& path) {
  if (!IsBucketUrl(path)) EnvWrapper::SyncDir(path);
}

bool BucketEnv::Exists(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::Exists(path);
  return Status(path).kind != FileKind::kMissing;
}

std::vector<std::string> BucketEnv::ListDir(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::ListDir(path);
  auto [b, key] = Locate(path);
  return b->ListDir(key);
}

FileStatus BucketEnv::Status(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::Status(path);
  auto [b, key] = Locate(path);
  return b->Status(key);
}

FileStatus BucketEnv::StatusFollowingLinks(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::StatusFollowingLinks(path);
  return Status(path);
}

void BucketEnv::SetMode(const std::string& path, mode_t mode) {
  if (!IsBucketUrl(path)) EnvWrapper::SetMode(path, mode);
}

void BucketEnv::SetModeNoFollow(const std::string& path, mode_t mode) {
  if (!IsBucketUrl(path)) EnvWrapper::SetModeNoFollow(path, mode);
}

void BucketEnv::SyncFileSystem(const std::string& path) {
  if (!IsBucketUrl(path)) EnvWrapper::SyncFileSystem(path);
}

std::unique_ptr<FileLock> BucketEnv::Lock(const std::string& path, LockMode mode) {
  if (!IsBucketUrl(path)) return EnvWrapper::Lock(path, mode);
  auto [b, key] = Locate(path);
  // The store's readers' lock ("lock") is nothing in a bucket, in either
  // mode: every writer takes "write.lock" exclusive first, and a bucket's
  // readers take nothing (see the header).
  if (mode == LockMode::kShared || BaseName(key) == "lock") return std::make_unique<FileLock>();
  if (mode != LockMode::kExclusive) throw Error(ErrorKind::kOther, "internal: lock " + path + ": bad mode");
  std::chrono::seconds lease;
  {
    std::lock_guard<std::mutex> l(mu_);
    lease = settings_->lease;
  }
  Env* env = target();
  const int64_t now = env->NowNanos();
  try {
    const std::string text = b->client()->Get(key, kMaxLockObject);
    auto held = DecodeHolder(text);
    if (!held)
      throw Error(ErrorKind::kLocked, "lock object " + path +
                                          " is not one vmback wrote (or is damaged): if no vmback uses this "
                                          "store, delete that object");
    const std::string who = EscapeForTerminal(held->host) + " pid " + std::to_string(held->pid);
    if (held->expires_ns > now) {
      const bool dead_here = held->host == env->HostName() && held->pid != ThisProcessId() &&
                             !ProcessExists(held->pid);
      if (!dead_here)
        throw Error(ErrorKind::kLocked, path + " is locked by another vmback process (" + who + ", lease until " +
                                            FormatTimeUtc(held->expires_ns) + ")");
      std::lock_guard<std::mutex> l(mu_);
      stale_reports_.push_back(path + ": " + who + " ended without releasing it");
    } else {
      std::lock_guard<std::mutex> l(mu_);
      stale_reports_.push_back(path + ": the lease of " + who + " ended at " + FormatTimeUtc(held->expires_ns));
    }
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNotFound) throw;
  }
  LockHolder me;
  me.host = env->HostName();
  me.pid = ThisProcessId();
  me.token = RandomHex(16);
  me.expires_ns = now + std::chrono::nanoseconds(lease).count();
  b->Put(key, EncodeHolder(me));
  // No conditional PUT here: read it back after a pause, in which another
  // taker who also found no lock has written his.
  env->clock()->SleepFor(kLockSettle);
  auto back = DecodeHolder(b->client()->Get(key, kMaxLockObject));
  if (!back || back->token != me.token)
    throw Error(ErrorKind::kLocked, path + " was taken by another vmback process at the same time" +
                                        (back ? " (" + EscapeForTerminal(back->host) + " pid " +
                                                    std::to_string(back->pid) + ")"
                                              : std::string()));
  return std::make_unique<BucketLock>(b, key, me, lease);
}

std::vector<std::string> BucketEnv::TakeStaleLockReports() {
  std::vector<std::string> out = EnvWrapper::TakeStaleLockReports();
  std::lock_guard<std::mutex> l(mu_);
  out.insert(out.end(), stale_reports_.begin(), stale_reports_.end());
  stale_reports_.clear();
  return out;
}

std::unique_ptr<ReadableDir> BucketEnv::OpenDirectory(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::OpenDirectory(path);
  Unsupported("walk", path);
}
std::string BucketEnv::ReadLink(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::ReadLink(path);
  Unsupported("read the symlink", path);
}
void BucketEnv::Symlink(const std::string& target, const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::Symlink(target, path);
  Unsupported("make the symlink", path);
}
void BucketEnv::Link(const std::string& existing, const std::string& path) {
  if (!IsBucketUrl(path) && !IsBucketUrl(existing)) return EnvWrapper::Link(existing, path);
  Unsupported("make the hard link", path);
}
void BucketEnv::MakeNode(const std::string& path, mode_t type, dev_t rdev) {
  if (!IsBucketUrl(path)) return EnvWrapper::MakeNode(path, type, rdev);
  Unsupported("make the node", path);
}
int BucketEnv::CloneFile(const std::string& from, const std::string& to,
                         const std::function<void()>& between_ranges) {
  if (!IsBucketUrl(from) && !IsBucketUrl(to)) return EnvWrapper::CloneFile(from, to, between_ranges);
  Unsupported("clone", to);
}
std::vector<FileExtent> BucketEnv::Extents(const std::string& path, size_t max_extents) {
  if (!IsBucketUrl(path)) return EnvWrapper::Extents(path, max_extents);
  Unsupported("map the extents of", path);
}
bool BucketEnv::SetOwner(const std::string& path, uid_t uid, gid_t gid) {
  if (!IsBucketUrl(path)) return EnvWrapper::SetOwner(path, uid, gid);
  Unsupported("set the owner of", path);
}
void BucketEnv::SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) {
  if (!IsBucketUrl(path)) return EnvWrapper::SetTimes(path, atime_ns, mtime_ns);
  Unsupported("set the times of", path);
}
Xattrs BucketEnv::ReadXattrs(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::ReadXattrs(path);
  return {};
}
void BucketEnv::SetXattr(const std::string& path, const std::string& name, const std::string& value) {
  if (!IsBucketUrl(path)) return EnvWrapper::SetXattr(path, name, value);
  Unsupported("set an extended attribute of", path);
}
void BucketEnv::RemoveXattr(const std::string& path, const std::string& name) {
  if (!IsBucketUrl(path)) return EnvWrapper::RemoveXattr(path, name);
  Unsupported("remove an extended attribute of", path);
}
uint64_t BucketEnv::FileSystemType(const std::string& path) {
  if (!IsBucketUrl(path)) return EnvWrapper::FileSystemType(path);
  return 0;
}

}  // namespace vmback
