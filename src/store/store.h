// The built-in store: content-addressed blobs in pack files, a rebuildable
// blob index, and one manifest per point. Layout and byte formats are in
// docs/FORMAT.md.
//
// Write protocol (crash-safe): blobs go into a pack under tmp/; a finished
// pack is fsynced, renamed into packs/XX/ and its directory fsynced before
// any index file or manifest names it; index files and manifests are written
// to a temp name, fsynced, renamed, and their directory fsynced. A crash at
// any step leaves every earlier point intact and no partial point visible;
// at worst some unreferenced packs (reclaimed by garbage collection).
//
// Mirrors: a store may have several copies, each a directory on its own disk,
// all with the same layout and byte-identical packs. Every write goes to
// every copy that is present (mirrors first, the primary last, so that what
// the primary shows is durable everywhere). Every read is checked; a copy
// that gives wrong or no bytes is read from another and repaired by a whole
// verified pack (the bad file is kept aside as *.bad-TIME). An I/O error is
// reported, never repaired or counted as damage. An absent copy is skipped
// with a warning and brought up to date by Sync().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "os/env.h"
#include "store/index.h"
#include "store/keys.h"
#include "store/pack.h"
#include "store/point_name.h"
#include "store/read_balance.h"
#include "util/error.h"
#include "util/log.h"
#include "util/tunables.h"

namespace vmback {

// store/manifest.h; not included here, so that the store's users do not all
// see the tree's types.
struct Manifest;

// The version of the store's format (config.json and manifests) this vmback
// writes for a plain store. An encrypted store's config.json says
// kEncryptedStoreFormatVersion (so that a vmback that cannot open its sealed
// objects refuses it); its manifests, inside their seals, stay version 1.
// kEncryptedStoreFormatVersion is the newest config.json this vmback reads.
inline constexpr int kStoreFormatVersion = 1;
inline constexpr int kEncryptedStoreFormatVersion = 2;

// store init --encrypt: where the first key comes from (keys.h) and its
// label and Argon2id cost (for a passphrase).
struct StoreInitEncryption {
  KeySources sources;
  std::string label = "initial";
  KdfParams kdf;
};

struct StoreWriteStats {
  uint64_t blobs_written = 0;
  uint64_t raw_bytes_written = 0;     // before compression
  uint64_t stored_bytes_written = 0;  // after compression, with headers
  uint64_t packs_written = 0;
};

enum class ManifestState { kGood, kRepaired, kBad, kUnreadable };

struct StoreOptions {
  // The other copies the user named (the config's [target] mirrors, or
  // --mirror), used instead of those recorded at init; empty = the recorded
  // ones (used only where they hold the same store: a recorded path comes
  // from the disk). The path opened and these are all named: when the path
  // is not there, the first of these that holds the store serves instead.
  std::vector<std::string> mirrors;
  // Directories named in this very command as new copies (store sync
  // --mirror): used besides the others, and each one that is empty (or not
  // there, below an existing directory) is made a copy by Sync() and
  // recorded in every copy's config.json.
  std::vector<std::string> new_copies;
  // store sync --init: the path opened and `mirrors` may be made copies
  // from empty directories too. Without it (and outside new_copies) an
  // empty directory is a copy that is absent (a disk not mounted leaves an
  // empty mount point), unless it holds the marker of an unfinished copy of
  // this store (kCopyMarker).
  bool init_named = false;
  // How long to wait for another process's lock before failing.
  double lock_wait_seconds = 0;
  // Where the key of an encrypted store comes from; empty: none (opening an
  // encrypted store then fails with kConfig, saying what to give).
  KeySources keys;
  // Refuse a store that is not encrypted (the config's [target] encrypt).
  bool require_encrypted = false;
  // An encrypted store opened to copy its files as they are (store sync,
  // key list): no key is asked for and the index is not loaded; anything
  // that reads or writes sealed data fails with kConfig asking for the key.
  // A plain store opens as always.
  bool without_key = false;
};

// Written first into every copy vmback makes (store init, Sync), before its
// layout and config.json: a directory holding it for this store but no
// config.json is a copy whose making was cut short, and the next Sync()
// finishes it. docs/FORMAT.md, "Mirrors".
inline constexpr char kCopyMarker[] = "vmback-copy";

// Where the copies of a store are, found without locking or writing
// anything (Store::Locate).
struct StoreCopies {
  std::string primary;             // the first named copy that holds the store
  std::vector<std::string> all;    // every copy to use, the primary first, present or not
};

// The copies in `copies` that lie on the root file system while at least
// one other does not (each most likely a disk that is not mounted), each
// with one warning line on the log. Returns them.
std::vector<std::string> WarnAboutCopiesOnRootFileSystem(const std::vector<std::string>& copies, Logger* log);

// What Sync() did to bring the copies in step.
struct SyncStats {
  uint64_t packs_copied = 0;
  uint64_t files_copied = 0;   // index files and manifests
  uint64_t points_removed = 0; // pruned while that copy was absent
  uint64_t copies_initialized = 0;
  std::vector<uint64_t> copied_to;  // per copy (copies() order): packs and manifests it lacked
};

// A damaged file heal set aside beside the one it replaced.
struct SetAsideFile {
  std::string path;
  uint64_t bytes = 0;
  int64_t time_ns = 0;  // when it was set aside: the <ns> of NAME.bad-<ns>
};

class Store {
 public:
  // Creates a new, empty store in dir and in each mirror (created if absent;
  // each must be empty). Returns the copies as recorded in config.json:
  // absolute, symlinks resolved (a relative path is read against the
  // working directory, once, here).
  // With `encrypt`, the store is encrypted (docs/FORMAT.md, "Encrypted
  // stores"): a new random master key, wrapped under the first key the
  // sources give (kConfig when none does).
  static std::vector<std::string> Init(Env* env, const std::string& dir, uint32_t block_size,
                                       const std::vector<std::string>& mirrors = {},
                                       const StoreInitEncryption* encrypt = nullptr);

  // The copies Open would use and which one would serve as the primary,
  // reading only config.json files. Throws kNotFound, naming every copy
  // tried and what is there, when no named copy holds a store.
  static StoreCopies Locate(Env* env, const std::string& dir, const StoreOptions& options = {});

  // Opens a store, taking its locks on every present copy:
  //   kShared     readers (list, restore, verify's check): "lock" shared.
  //               A reader sees the points committed when it opened
  //               (ListPoints is fixed then), so a backup running beside it
  //               changes nothing it reads.
  //   kAppend     the one writer that only adds (backup): "write.lock"
  //               exclusive, then "lock" shared, so readers go on.
  //   kExclusive  writers that delete or rewrite (prune/GC, sync, repair,
  //               healing verify): "write.lock" and "lock" exclusive. The primary is dir, or when dir holds no store (not there, or
  // an empty mount point) the first of options.mirrors that does; the others
  // are absent, with a warning each, as an unplugged mirror is. dir and the
  // mirrors are resolved once (CanonicalPath); inside
  // a copy nothing is followed: a symlink, device node or fifo anywhere in
  // its layout is refused (kCorrupt, naming it) before anything is locked,
  // written or deleted (a mirror with one is left out as absent). A writer
  // narrows modes wider than 0700 / 0600, with one line on the log. Loads the blob index from index files and any pack they do not
  // cover. Throws kNotFound if no named copy holds a store, kConfig for a newer
  // format, kCorrupt for a damaged config, kLocked if another process holds
  // the lock (after waiting lock_wait_seconds).
  static std::unique_ptr<Store> Open(Env* env, const std::string& dir, LockMode mode,
                                     Logger* log, const StoreOptions& options = {});
  ~Store();

  // The primary copy (the first present one).
  const std::string& dir() const { return dir_; }
  // A writer (kAppend or kExclusive).
  bool exclusive() const { return exclusive_; }
  // Opened kExclusive (or upgraded): no reader is there.
  bool sole() const { return sole_; }
  // Whether reads repair a copy that gave wrong bytes from one that gave the
  // right ones (on by default for writers and readers alike). Off for
  // verify's checking pass, which counts the damage and leaves healing to
  // its exclusive pass.
  void set_read_repair(bool on) { read_repair_ = on; }
  // Packs present at open that no index file named (indexed from their own
  // tables): for a reader, packs a backup beside it may still be writing to
  // the other copies.
  const std::vector<Hash>& unindexed_packs() const { return unindexed_packs_; }
  // The ids recorded as damaged on every copy (the file "damaged").
  std::vector<Hash> damaged_ids() const {
    std::shared_lock l(mu_);
    return {damaged_.begin(), damaged_.end()};
  }
  // From kAppend to kExclusive, for the prune after a run's backup: waits up
  // to wait_seconds for the readers to finish; kLocked if they do not (the
  // store stays kAppend).
  void Upgrade(double wait_seconds);
  // Every present copy, the primary first; and those that are not there.
  const std::vector<std::string>& copies() const { return copies_; }
  // The damaged files heal set aside (KeepAside: NAME.bad-<ns>) in packs/,
  // index/ and points/ of every present copy, oldest first. A name whose
  // <ns> is not a number is not one of them.
  std::vector<SetAsideFile> ListSetAside() const;
  const std::vector<std::string>& absent_copies() const { return absent_; }
  // Brings every present copy up to date with the union of the others,
  // pack by pack, without rewriting what a copy has; makes a new copy in an
  // empty directory only where StoreOptions allowed it (new_copies,
  // init_named) or where the marker of an unfinished copy of this store is
  // (never in one that is only named in a config.json or a config file, so
  // that the empty mount point of an unmounted disk stays empty). Every
  // present copy's config.json lists every copy. Points pruned while a copy
  // was absent are removed from it, not brought back. What it copied is
  // logged (info) unless the caller reports it itself (say_done false).
  // REQUIRES: kExclusive.
  SyncStats Sync(bool say_done = true);
  // Copies pack from a copy where it is whole into copy `to`, keeping a
  // damaged file aside. Returns false if no copy has it whole.
  bool RepairPack(const Hash& pack, size_t to);
  // Repairs made by reads so far (for reports).
  uint64_t repairs() const { return repairs_; }
  uint32_t block_size() const { return block_size_; }
  // Encrypted stores: everything below is sealed with this and blob ids are
  // keyed (crypto/seal.h); null for a plain store. Opened without_key:
  // throws kConfig (the command needs the key).
  const Sealer* sealer() const { return Keyed(); }
  bool encrypted() const { return sealer_ != nullptr || keyless_; }
  // The id of a blob of these plain bytes in this store: keyed with the
  // store's id key when encrypted, else SHA-256. Thread-safe.
  Hash BlobId(const void* data, size_t len) const {
    const Sealer* s = Keyed();
    return s ? s->Id(data, len) : Sha256(data, len);
  }
  Hash BlobId(std::string_view s) const { return BlobId(s.data(), s.size()); }
  // The wrapped copies of an encrypted store's master key (empty if plain).
  std::vector<WrappedKey> Keys() const { return keys_; }
  // The master key the store was opened with. REQUIRES: encrypted().
  const SecretKey& master_key() const {
    Keyed();
    return *master_;
  }
  // The store's id (config.json store_id), bound into every wrapped key.
  std::string store_id() const { return config_.value("store_id", ""); }
  // Replaces the wrapped keys in every present copy's config.json (mirrors
  // first, the primary last). REQUIRES: kExclusive; encrypted(); 1 to
  // kMaxWrappedKeys keys with distinct labels.
  void SetKeys(const std::vector<WrappedKey>& keys);
  int zstd_level() const { return zstd_level_; }
  Env* env() const { return env_; }

  // Thread-safe. False for an id known to be damaged in every copy, so that
  // the next Put of the same data writes a fresh copy (self-healing).
  bool Has(const Hash& id) const;
  // True if any of ids is known damaged or recorded lost (no good copy:
  // a backup reads an unchanged file that refers to one again, so that the
  // data comes back). Cheap when nothing is.
  bool AnyDamaged(const std::vector<Hash>& ids) const;
  bool HasDamaged() const {
    std::shared_lock l(mu_);
    return !damaged_.empty() || !lost_.empty();
  }
  // Records the ids a full verify found with no good copy (in the file
  // "damaged", replacing what was there), so the next backup that meets
  // their data writes them afresh.
  void SetDamaged(const std::vector<Hash>& ids);
  // Blob ids `vmback repair` dropped because no copy and no newer backup
  // had them whole (the file "lost", docs/FORMAT.md): verify names the
  // blocks as a note, not as damage, and Get says they were recorded lost.
  // An id a later backup writes again is good once more (ForgetLost).
  bool IsLost(const Hash& id) const;
  std::vector<Hash> Lost() const;
  // Add ids to, or remove them from, the file "lost" on every copy (the
  // whole file rewritten atomically). REQUIRES: kExclusive.
  void AddLost(const std::vector<Hash>& ids);
  void ForgetLost(const std::vector<Hash>& ids);
  // Reads, decompresses and re-hashes a blob. Thread-safe. Throws kNotFound
  // for an unknown id, kCorrupt naming the pack file if the bytes are wrong.
  // Reads are spread over the present copies (ReadBalancer: to the copy
  // expected to finish first by its measured speed, each range of a pack
  // from one copy); a copy that fails is read from another, as the header
  // says.
  std::string Get(const Hash& id) const;
  // What each present copy (copies() order) served to Get so far.
  std::vector<CopyReadStats> CopyReads() const { return balancer_.Stats(); }
  // Like Get, and checks the blob's type.
  std::string Get(const Hash& id, BlobType type) const;

  // Appends a blob unless the store has it. Returns true if written.
  // REQUIRES: opened kExclusive; one writer thread.
  bool Put(const EncodedBlob& blob);
  // Hashes, encodes and puts raw bytes; returns the id.
  Hash PutRaw(BlobType type, std::string_view raw);
  // Makes everything put so far durable: finishes the open pack and writes
  // an index file for the packs of this session.
  void Flush();
  const StoreWriteStats& write_stats() const { return stats_; }
  // True once a write failed: the store must not be written again in this
  // session (what reached the disk is unknown; the next Open sorts it out).
  bool broken() const { return broken_; }

  // Point names, sorted oldest first. Never empty because of an error: a
  // failed listing throws.
  std::vector<std::string> ListPoints() const;
  // Reads and checks a point's manifest (DecodeManifest), from another copy
  // when the primary's is damaged or unreadable; throws kNotFound / kCorrupt
  // naming the file.
  Manifest ReadPoint(const std::string& point) const;
  // Commits a point: writes points/<manifest.name>.json to every copy.
  // REQUIRES: Flush() done, so every blob it names is durable; a name.
  void WriteManifest(const Manifest& manifest);
  // A fresh name from the current UTC time, e.g. 2026-11-26T180102Z.
  std::string NewPointName() const;

  // For verify.
  std::vector<Hash> ListPackFiles() const;  // of the primary
  std::vector<Hash> ListPackFiles(size_t copy) const;
  std::string PackPath(const Hash& pack) const { return PackPath(0, pack); }
  std::string PackPath(size_t copy, const Hash& pack) const;
  std::string ManifestPath(const std::string& point) const;
  // Checks one point's manifest on every copy and rewrites a damaged or
  // missing one from a copy where it is whole (the bad file kept aside).
  // One state per copy, in copies() order.
  std::vector<ManifestState> RepairManifest(const std::string& point);
  // Writes a blob into the current pack even though the store has it
  // (garbage collection moves live blobs out of mostly-dead packs).
  // REQUIRES: kExclusive.
  void Rewrite(BlobType type, std::string_view raw);
  // Garbage collection's commit: writes one index file that covers every
  // pack but `doomed`, removes the other index files, then the doomed packs
  // from every copy, and reloads the index. A crash anywhere leaves a store
  // whose every point is whole (doomed packs left behind are re-indexed and
  // collected again). A doomed pack that a repack since the last DropPacks
  // remade byte for byte (the same id) is kept.
  // REQUIRES: kExclusive, Flush() done.
  void DropPacks(const std::vector<Hash>& doomed);
  // Removes a point from every present copy, leaving a tombstone so that
  // Sync never brings it back. REQUIRES: kExclusive.
  void DeletePoint(const std::string& point);
  // Checks every index file on every copy; one that is damaged on a copy is
  // rewritten there from a copy where it is whole (the bad file kept aside),
  // or, whole nowhere, kept aside everywhere (the index is a cache: the next
  // Open indexes its packs from their own tables). The primary's own damaged
  // index files are already replaced by Open. Returns how many files were
  // repaired or set aside, per copy (copies() order). REQUIRES: kExclusive.
  // check_only: counts the damaged ones per copy and changes nothing (any
  // mode; an index file a writer folds away meanwhile is not counted).
  std::vector<uint64_t> RepairIndexFiles(bool check_only = false);
  // A copy of the index (takes the lock).
  BlobIndex IndexSnapshot() const;

 private:
  Store(Env* env, std::string dir, Logger* log);
  void LoadIndex();
  // The packs being written: one for file data, one for the trees and
  // block lists that say where it is (kMetaPack), so that a later backup, a
  // listing or a restore reads a point's metadata from a few packs, not a
  // blob from each of thousands.
  enum PackStream : size_t { kDataPack = 0, kMetaPack = 1, kPackStreams = 2 };
  static PackStream StreamOf(BlobType type) { return type == BlobType::kData ? kDataPack : kMetaPack; }
  bool Writing() const { return writers_[kDataPack] || writers_[kMetaPack]; }
  void FinishPack(PackStream stream);
  // Writes a small file atomically into every present copy, primary last.
  void WriteEverywhere(const std::string& rel_path, const std::string& data);
  void RemoveEverywhere(const std::string& rel_path);
  std::string ReadBlobFrom(size_t copy, const BlobLocation& loc, const Hash& id) const;
  // Copies a pack file between copies through a temp file, checking its
  // SHA-256 against the pack id. Throws kCorrupt if the source is not whole.
  void CopyPack(const Hash& pack, size_t from, size_t to);
  // Renames a damaged file to NAME.bad-TIME so it can be inspected.
  void KeepAside(const std::string& path) const;
  void SaveDamaged();
  // Reads the file "lost" of the primary (hostile input: bounded and
  // checked; a damaged one is ignored with a warning, so that its blocks
  // show as damage again rather than as lost) / writes it everywhere.
  void LoadLost();
  void SaveLost();
  bool PutLocked(const EncodedBlob& blob);
  // Runs a write step: refuses on a read-only or broken store, and marks the
  // store broken if the step fails (what reached the disk is unknown).
  template <typename Fn>
  auto Guard(Fn fn) -> decltype(fn()) {
    if (broken_) throw Error(ErrorKind::kOther, "store " + dir_ + " is unusable after a failed write");
    if (!exclusive_) throw Error(ErrorKind::kOther, "internal: store " + dir_ + " opened read-only");
    try {
      return fn();
    } catch (...) {
      broken_ = true;
      throw;
    }
  }
  std::shared_ptr<ReadableFile> OpenPack(size_t copy, uint32_t pack) const;

  // Which copy each read of Get goes to (store/read_balance.h).
  mutable ReadBalancer balancer_;
  Env* env_;
  std::string dir_;
  Logger* log_;
  nlohmann::json config_;  // the primary's config.json
  std::vector<std::string> copies_;  // present; copies_[0] == dir_
  std::vector<std::string> copy_ids_;  // of copies_, from their config.json
  std::vector<std::string> absent_;
  // The directories that may be made copies from empty ones (StoreOptions
  // new_copies, and with init_named the path and mirrors). Canonical paths.
  std::unordered_set<std::string> may_init_;
  // True for an absent copy that Sync may make: in may_init_ and empty (or
  // not there, below an existing directory), or holding the marker of an
  // unfinished copy of this store.
  bool MayMakeCopy(const std::string& dir) const;
  // Makes an absent directory a new copy (marker, layout, config.json
  // last) and adds it to the present ones. REQUIRES: kExclusive.
  void MakeCopy(const std::string& dir);
  // Brings the "copies" list of every present copy's config.json to the
  // union of theirs and the present copies. REQUIRES: kExclusive.
  void RecordCopies();
  std::vector<std::unique_ptr<FileLock>> locks_;       // "write.lock" (writers), per copy
  std::vector<std::unique_ptr<FileLock>> read_locks_;  // "lock", per copy
  std::optional<std::vector<std::string>> pinned_points_;  // a reader's ListPoints
  std::vector<Hash> unindexed_packs_;
  mutable std::mutex repair_mu_;
  mutable uint64_t repairs_ = 0;
  bool exclusive_ = false;
  bool sole_ = false;
  bool read_repair_ = true;
  bool broken_ = false;
  std::unordered_set<std::string> synced_dirs_;  // packs/XX made durable this session
  uint32_t block_size_ = kDefaultStoreBlockSize;
  // sealer_, or a kConfig error when the store is encrypted and was opened
  // without_key: nothing sealed is read or written without the key.
  const Sealer* Keyed() const {
    if (keyless_) ThrowKeyless();
    return sealer_.get();
  }
  [[noreturn]] void ThrowKeyless() const;
  std::unique_ptr<Sealer> sealer_;
  bool keyless_ = false;  // encrypted, opened without_key (StoreOptions)
  std::optional<SecretKey> master_;
  std::vector<WrappedKey> keys_;
  std::string key_check_;
  int zstd_level_ = kDefaultZstdLevel;
  uint64_t pack_target_ = kPackTargetBytes;

  mutable std::shared_mutex mu_;  // guards index_
  BlobIndex index_;
  // Blobs in the pack being written: readable by Has, not yet by Get.
  std::unordered_map<Hash, bool, HashHasher> pending_;
  // Ids with no good copy (found by reads, or by an earlier verify).
  mutable std::unordered_set<Hash, HashHasher> damaged_;
  bool damaged_changed_ = false;
  std::unordered_set<Hash, HashHasher> lost_;  // guarded by mu_

  std::unique_ptr<PackWriter> writers_[kPackStreams];
  IndexFile session_index_;  // packs finished by this session, not yet indexed
  // Packs finished under the id of a pack the index had: remade whole.
  std::unordered_set<Hash, HashHasher> remade_packs_;
  StoreWriteStats stats_;

  mutable std::mutex files_mu_;
  mutable std::map<std::pair<size_t, uint32_t>, std::shared_ptr<ReadableFile>> open_packs_;
};

}  // namespace vmback
