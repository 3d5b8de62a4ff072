// Blockmaps: the SHA-256 of each block of a file mirrored into an in-place
// target (inplace.h), kept inside the target beside the data, so that every
// snapshot of the target carries the hashes of its own content. The format
// (docs/FORMAT.md, "In-place targets: blockmaps"), its reading, writing,
// checking and listing live here and nowhere else. Layout:
//
//   MAPROOT/.vmback-blockmaps/lock           flock(2): one sync at a time
//   MAPROOT/.vmback-blockmaps/XX/<H>.map     H = hex SHA-256 of the file's path
//                                            relative to MAPROOT, XX = H[0..2)
//
// A map file: a 64-byte header (magic, version, state, block size, path
// length, file size, source mtime, target inode, mtime and ctime), the path,
// one 32-byte entry per block (the block's SHA-256; zero for an all-zero
// block), and a 32-byte trailer: the SHA-256 of the entries, then header and
// path. A map is sound when magic, version, state "complete", block size,
// length and trailer are right; whether it still fits its file is the
// sink's question (inplace.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "os/env.h"
#include "os/large_memory.h"
#include "util/sha256.h"

namespace vmback {

// Directory (below MAPROOT) holding the blockmaps.
inline constexpr const char* kBlockmapDir = ".vmback-blockmaps";
// ZFS's control directory at a dataset's root (visible with snapdir=visible):
// never mirrored, never deleted (rmdir in .zfs/snapshot destroys snapshots).
inline constexpr const char* kZfsDir = ".zfs";

// One blockmap: the identity of the file it describes, and its entries.
struct Blockmap {
  uint32_t block_size = 0;
  uint64_t file_size = 0;
  int64_t source_mtime_ns = 0;
  uint64_t target_ino = 0;
  int64_t target_mtime_ns = 0;
  int64_t target_ctime_ns = 0;
  std::string path;           // relative to the map root
  std::vector<Hash> blocks;   // zero id = all-zero block (left empty by CheckBlockmap)
  // The map index only (not in a map file): the source's ctime when its
  // metadata was last mirrored in full (every step done), else kNoCtime.
  int64_t source_ctime_ns = kNoCtime;
  static constexpr int64_t kNoCtime = INT64_MIN;
  // The map index only: the map file itself as the index saw it (lstat:
  // inode, size, mtime, ctime), so that an entry is used only while its
  // map was not touched since; map_ino 0: not known yet.
  uint64_t map_ino = 0;
  uint64_t map_size = 0;
  int64_t map_mtime_ns = 0;
  int64_t map_ctime_ns = 0;
};

// Bytes of one entry (and of the trailer).
inline constexpr uint64_t kBlockmapEntrySize = 32;
static_assert(sizeof(Hash) == kBlockmapEntrySize);

// The number of blocks (entries) of a file of `size` bytes.
inline uint64_t BlockCount(uint64_t size, uint64_t block_size) {
  return size / block_size + (size % block_size != 0);
}

// The entry of a block of data: zero for an all-zero block, else its SHA-256.
Hash BlockEntry(const char* data, size_t len);

// Where the blockmap of the file at rel (relative to map_root) lives.
std::string BlockmapPath(const std::string& map_root, const std::string& rel);
// The same, given Sha256(rel).
std::string BlockmapPathOf(const std::string& map_root, const Hash& rel_hash);

// --- Reading ---

// Reads the header and path of the map in f into *m (blocks left empty) and
// checks the whole file: magic, version, state, block size, length and
// trailer. Returns "" when it is sound, else what is wrong with it ("is
// truncated", "has a wrong checksum", ...), for a message naming the map.
std::string CheckBlockmap(ReadableFile* f, Blockmap* m);

// Reads and checks the map at map_path. Throws kNotFound when absent,
// kCorrupt naming the problem. Holds every entry in memory: meant for
// restore, verify and tests, not for the sink.
Blockmap ReadBlockmap(Env* env, const std::string& map_path);

// Reads the entries [first, first + count) of the sound map f (header m)
// into *out. Throws kCorrupt naming map_path when they are not all there.
void ReadBlockmapEntries(ReadableFile* f, const std::string& map_path, const Blockmap& m, uint64_t first,
                         size_t count, std::string* out);

// --- Writing ---

// What makes a written map complete (trusted): its header, with state
// "complete", at offset 0, and its trailer at trailer_offset.
struct BlockmapCompletion {
  std::string map_path;
  std::string header;
  Hash trailer;
  uint64_t trailer_offset = 0;
  std::string path;  // the file's (its header's)
  // A map started kLater (no file yet): all of it, header, entries and
  // trailer, for a map the completion creates (O_EXCL); else empty.
  std::string whole;
  // The map still open (Finish with keep_open), written through instead of
  // opened again by its path; null: opened by map_path.
  std::unique_ptr<WritableFile> open;
};

// Writes one map in the order the sink's durability story needs (inplace.h):
// a map that could be trusted is invalidated (made "being written",
// durably) before the first change to its file, its entries are written in
// place, and Finish hands back the header and trailer that complete it, to
// be written (WriteBlockmapCompletion) only after a barrier that made the
// file durable. Nothing here writes the state "complete" before that.
// The bytes written are added to *bytes_written as they go.
class BlockmapWriter {
 public:
  enum class Start {
    kUpdate,  // the map at map_path is sound: update it in place
    kFresh,   // empty the map there now, durably (fsync): invalid until completed
    kNew,     // no map is there: create one (O_EXCL: one planted since is
              // refused), no fsync (a new map has no header on disk until
              // completed, so it is never trusted before)
    kInvalidated,  // the map was sound and is invalidated durably already
                   // (InvalidateBlockmap, then a barrier): update it in place
    kLater,  // no map is there (as kNew), and a small one: nothing is made
             // now; its entries are kept in memory and the completion
             // creates the map (O_EXCL) and writes it whole at once
  };
  BlockmapWriter(Env* env, const std::string& map_path, const std::string& rel, Start start,
                 uint64_t* bytes_written);

  // Sets the state to "being written" and fsyncs the map, once (a fresh map
  // is invalid already).
  void Invalidate();
  bool invalidated() const { return invalidated_; }
  bool later() const { return later_; }  // started kLater

  // Writes `count` entries from index `first` (invalidating the map first).
  void WriteEntries(uint64_t first, const char* entries, size_t count);
  // Feeds entries to the trailer: every entry of the new map, in order,
  // whether it was written or stays.
  void AddToTrailer(const char* entries, size_t count);

  // Closes the map (truncated to its length when resize; no fsync), or
  // hands it over open when keep_open, and returns what completes it for
  // m's file (m.blocks is not used: the entries are written): header
  // (state "complete") and trailer.
  BlockmapCompletion Finish(const Blockmap& m, bool resize, bool keep_open = false);
  // Closes the map without writing anything more.
  void Close();

 private:
  std::unique_ptr<WritableFile> out_;
  std::string map_path_;
  uint64_t entries_off_;
  uint64_t* bytes_written_;
  bool invalidated_ = false;
  Sha256Stream trailer_;
  bool later_ = false;  // kLater: no file; the entries in later_entries_
  std::string later_entries_;
};

// Sets the state of the sound map at map_path, without an fsync: "being
// written" (the caller passes a barrier, syncfs, before the map's file
// changes), or back to "complete" (REQUIRES: its file was not touched since
// the map was sound; the trailer covers the header as complete, so the map
// is sound again). Returns the bytes written.
enum class MapState { kComplete, kBeingWritten };
uint64_t SetBlockmapState(Env* env, const std::string& map_path, MapState state);

// Writes c's header and trailer into its map (no fsync: durable at the
// caller's next barrier). REQUIRES: the file the map describes, and the
// map's entries, are durable (a barrier since their last change). Returns
// the bytes written. Closes c.open; creates a map started kLater (O_EXCL,
// 0600: refusing anything there). after: when not null, the map's status
// once written (fstat of the descriptor written through; kind kMissing
// when the file system cannot tell it that way).
uint64_t WriteBlockmapCompletion(Env* env, BlockmapCompletion* c, FileStatus* after = nullptr);

// The header (magic to path) of a complete map of m's file.
std::string EncodeBlockmapHeader(const Blockmap& m);

// Rewrites header and trailer of the sound map f (at map_path) whose entries
// stay, for m's new identity (inode, times); no fsync: the file's data did
// not change, so the map is right in either order (a header that reaches
// the disk without the file's new times only fails to fit, and the next
// sync compares). Returns the bytes written. Throws kCorrupt when the map
// shrank under it.
uint64_t RewriteBlockmapHeader(Env* env, ReadableFile* f, const std::string& map_path, const Blockmap& m);

// --- The map index ---
//
// MAPROOT/.vmback-blockmaps/index: the headers of a tree's maps in one file,
// read in one sequential pass, so that a sync can tell a file it need not
// read without opening its map (a random read per file on a cold disk).
// Format: docs/FORMAT.md, "The map index". An entry claims: the mirror file
// at its path, with the recorded inode, size, mtime and ctime, holds the
// data of the source as it was at the recorded size and mtime, durably.
// Nothing else is taken from it: a file whose source changed is copied
// with its map read and checked as before.
//
// Crash safety (inplace.h, "Order of writes"): a sync removes the index,
// durably, before it changes the data of any existing mirror file, and
// writes a new one (WriteFileAtomic) only after every file it wrote is
// durable. An index that is torn, of another version or block size, or
// larger than kMaxMapIndexSize is not used (the maps are read instead).

// The index's name in MAPROOT/.vmback-blockmaps.
inline constexpr const char* kMapIndexName = "index";
// Larger indexes are neither written nor read (about 130 bytes per file:
// 2 million files of paths 50 bytes long; a forged one costs at most about
// 1 GiB of memory to read).
inline constexpr uint64_t kMaxMapIndexSize = uint64_t{256} << 20;

// Map headers (Blockmap without entries) by path relative to MAPROOT.
using MapsByPath = std::unordered_map<std::string, Blockmap>;

// The records of a map index as read (ReadMapIndex): map headers in the
// file's order (path order, as vmback writes them), each path once, found
// by path. One array of records and one of slots (open addressing): one
// allocation per record, its path (a node-based map made three). Not
// changed once read: pointers to its records stay valid until it is
// cleared or read into.
class MapIndex {
 public:
  // The record of path, or null.
  const Blockmap* Find(std::string_view path) const;
  size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  // In the file's order.
  const std::vector<Blockmap>& records() const { return records_; }
  void clear();

 private:
  friend std::string ReadMapIndex(Env*, const std::string&, uint32_t, MapIndex*, bool*);
  // Room for n records (slots at most half full); clears.
  void Reserve(size_t n);
  // The last record of records_ made findable; false (and it is dropped)
  // when its path is there already. At most the n given to Reserve.
  bool IndexLast();
  // Path's slot, or the empty one where it would go; *tag: its hash's tag.
  size_t SlotOf(std::string_view path, uint64_t* tag) const;
  // A slot is 0 when empty; else the high 32 bits of its path's hash (its
  // tag) over 1 + the index of its record. A lookup compares paths only
  // where the tags agree: it reads another path's record only when their
  // tags collide.
  static constexpr uint64_t kTagBits = ~uint64_t{0} << 32;
  static size_t RecordOf(uint64_t slot) { return static_cast<size_t>((slot & ~kTagBits) - 1); }

  std::vector<Blockmap> records_;
  std::vector<uint64_t> slots_;
};

// An entry whose source_ctime_ns is the source file's ctime now also says
// that the mirror file's metadata (owner, mode, mtime, xattrs) is the
// source's, when the mirror file still fits it (the same inode, size, mtime
// and ctime): neither changed since the sync that mirrored them.

// An index written "exact" also says that the map directory held these
// maps and nothing else (no other map, no temporary) when it was written;
// a sync removes it before it creates a map, so that it stays true.

// Reads the index at path, written for blocks of block_size, into *out
// (and whether it is exact into *exact, when given). Returns "" when it is
// sound, else why it is not used ("is missing", "has a wrong checksum",
// ...); *out is then empty.
std::string ReadMapIndex(Env* env, const std::string& path, uint32_t block_size, MapIndex* out,
                         bool* exact = nullptr);

// The index of the maps maps points to (each m.block_size == block_size),
// sorted by path here when they are not in order already; a path given
// twice is written once.
LargeMemory EncodeMapIndex(std::vector<const Blockmap*> maps, uint32_t block_size, bool exact);

// Whether a and b describe the same file identically (header fields,
// path and the index's fields; entries are not compared).
bool SameMapHeader(const Blockmap& a, const Blockmap& b);

// Whether the index entry m still describes its map file, whose lstat is
// st: a regular file with the inode, size, mtime and ctime recorded. (Any
// write to the map, a truncation, a rename over it or a symlink put in its
// place changes one of them.)
bool MapFileUnchanged(const Blockmap& m, const FileStatus& st);

// Records st (the map file's lstat) in the index entry m.
void RecordMapFile(Blockmap* m, const FileStatus& st);

// --- Checking and listing ---

// Hashes the file at `file` block by block and compares it with map.
// Returns the problems found (the caller names the file); counts the
// blocks and bytes checked into *blocks and *bytes.
std::vector<std::string> CheckAgainstBlockmap(Env* env, const std::string& file, const Blockmap& map,
                                              uint64_t* blocks, uint64_t* bytes);

// Every blockmap below map_root (any *.map in a directory of its
// .vmback-blockmaps), sorted; none when it has no such directory.
std::vector<std::string> ListBlockmaps(Env* env, const std::string& map_root);

}  // namespace vmback
