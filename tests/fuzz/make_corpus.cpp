// Writes the generated seeds of tests/fuzz/corpus: valid files made by
// vmback's own writers (PackWriter, EncodeIndexFile, Store::WriteManifest,
// EncodeTree, SyncInPlace), plus a few damaged copies of them. Run it after
// a format change:
//
//   build-fuzz/tests/fuzz/fuzz_make_corpus tests/fuzz/corpus
//
// The config seeds are written by hand and are not touched. Blockmap seeds
// record the inode and times of a scratch file, so they differ per run.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/index.h"
#include "store/pack.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/tree.h"
#include "inplace/inplace.h"
#include "util/encoding.h"
#include "util/log.h"

namespace vmback {
namespace {

std::string g_out;  // the corpus directory

void Put(const std::string& target, const std::string& name, const std::string& data) {
  std::filesystem::create_directories(g_out + "/" + target);
  std::ofstream f(g_out + "/" + target + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) throw Error(ErrorKind::kIo, "cannot write seed " + target + "/" + name);
}

std::string Flip(std::string s, size_t at) {
  s[at % s.size()] ^= 0x20;
  return s;
}

std::string Block(char c, size_t n) { return std::string(n, c); }

void MakePacks(Env* env, const std::string& scratch) {
  std::vector<std::pair<BlobType, std::string>> blobs = {
      {BlobType::kData, "plain bytes that do not compress: q8#Zr!x0"},
      {BlobType::kData, Block('a', 600)},  // compresses
      {BlobType::kList, EncodeIdList({Sha256("x"), Hash{}})},
      {BlobType::kTree, EncodeTree({})},
  };
  IndexFile index;
  for (int n : {0, 1, 4}) {
    std::string tmp = scratch + "/pack-" + std::to_string(n);
    PackWriter w(env, tmp);
    for (int i = 0; i < n; i++) w.Add(EncodeBlob(Sha256(blobs[i].second), blobs[i].first, blobs[i].second, 3));
    Hash id = w.Finish();
    std::string pack = ReadFileToString(env, tmp);
    Put("pack", "valid-" + std::to_string(n) + "-blobs.pack", pack);
    index.packs.emplace_back(id, w.entries());
    if (n == 4) {
      Put("pack", "bad-table-checksum.pack", Flip(pack, pack.size() - 60));
      Put("pack", "truncated-footer.pack", pack.substr(0, pack.size() - 20));
      Put("pack", "blob-bit-flip.pack", Flip(pack, 60));
      Put("pack", "bad-magic.pack", Flip(pack, 0));
    }
  }
  std::string idx = EncodeIndexFile(index);
  Put("index", "valid-3-packs.idx", idx);
  Put("index", "valid-empty.idx", EncodeIndexFile(IndexFile{}));
  Put("index", "bad-checksum.idx", Flip(idx, idx.size() - 1));
  Put("index", "truncated.idx", idx.substr(0, idx.size() / 2));
  std::string trailing = idx.substr(0, idx.size() - 32) + "xx";
  Hash sum = Sha256(trailing);
  Put("index", "trailing-bytes.idx", trailing + std::string(reinterpret_cast<const char*>(sum.bytes.data()), 32));
}

Entry MakeEntry(const std::string& name, EntryType type) {
  Entry e;
  e.name = name;
  e.type = type;
  e.mode = 0644;
  e.uid = 1000;
  e.gid = 100;
  e.mtime_ns = 1795716062123456789;
  return e;
}

void MakeManifests(Env* env, const std::string& scratch) {
  Entry file = MakeEntry("disk.qcow2", EntryType::kFile);
  file.size = 196608;
  file.content = {Sha256("list 0")};
  file.xattrs = {{"user.note", "hi"}, {"security.capability", std::string("\x01\x00\x00\x02", 4)}};
  Entry link = MakeEntry("disk-link.qcow2", EntryType::kFile);
  link.size = file.size;
  link.content = file.content;
  link.hardlink = "disk.qcow2";
  Entry sym = MakeEntry("latest", EntryType::kSymlink);
  sym.target = "disk.qcow2";
  Entry dev = MakeEntry("null", EntryType::kCharDevice);
  dev.rdev = 0x103;
  Entry raw_name = MakeEntry(std::string("caf\xe9", 4), EntryType::kFifo);
  std::vector<Entry> children = {raw_name, link, file, sym, dev};
  std::sort(children.begin(), children.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  std::string tree = EncodeTree(children);
  Put("manifest", "tree.json", tree);

  Entry root = MakeEntry("", EntryType::kDir);
  root.mode = 0755;
  root.subtree = Sha256(tree);
  Entry image = MakeEntry("", EntryType::kFile);
  image.size = 10737418240;
  image.content = {Sha256("list a"), Sha256("list b")};
  Manifest m;
  m.name = PointName::Parse("2026-11-26T180102Z", "corpus");
  m.time = "2026-11-26T18:01:02Z";
  m.time_ns = 1795716062000000000;
  m.host = "kvm1";
  m.block_size = kDefaultStoreBlockSize;
  m.volumes.push_back({"images", "/var/lib/libvirt/images", root});
  m.volumes.push_back({"vm1-disk", "/dev/vg0/vm1", image});
  m.stats = {{"errors", 0}, {"seconds_ms", 1234}};

  Logger log(LogLevel::kError, false);
  Store::Init(env, scratch + "/store", kDefaultStoreBlockSize);
  auto store = Store::Open(env, scratch + "/store", LockMode::kExclusive, &log);
  store->WriteManifest(m);
  std::string text = ReadFileToString(env, store->ManifestPath("2026-11-26T180102Z"));
  Put("manifest", "valid.json", text);
  Put("manifest", "bad-checksum.json", Flip(text, text.size() - 5));
  Put("manifest", "no-checksum-line.json", text.substr(0, text.find('\n')));
  Put("manifest", "truncated.json", text.substr(0, text.size() / 2));
  nlohmann::json newer = ManifestToJson(m);
  newer["version"] = kStoreFormatVersion + 1;
  std::string body = newer.dump();
  Put("manifest", "newer-version.json", body + "\nsha256:" + Sha256(body).Hex() + "\n");
}

void MakeBlockmaps(Env* env, const std::string& scratch) {
  Logger log(LogLevel::kError, false);
  std::filesystem::create_directories(scratch + "/mirror");
  struct Case {
    const char* name;
    std::string data;
  };
  std::vector<Case> cases = {
      {"valid-empty-file.map", ""},
      {"valid-3-blocks.map", Block('x', 4096) + Block('\0', 4096) + "tail"},
  };
  for (const auto& c : cases) {
    std::string src = scratch + "/" + c.name + ".img";
    std::ofstream(src, std::ios::binary) << c.data;
    std::string dest = scratch + "/mirror/" + c.name + ".img";
    SyncInPlace(env, src, dest, 4096, InplaceOptions{}, &log);
    std::string map = ReadFileToString(env, BlockmapPath(scratch + "/mirror", BaseName(dest)));
    Put("blockmap", c.name, map);
    if (!c.data.empty()) {
      std::string writing = map;
      writing[12] = 2;  // state: being written
      Put("blockmap", "state-writing.map", writing);
      Put("blockmap", "bad-trailer.map", Flip(map, map.size() - 1));
      Put("blockmap", "short.map", map.substr(0, map.size() - 32));
    }
  }
}

}  // namespace
}  // namespace vmback

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  vmback::g_out = argv[1];
  const char* tmp = std::getenv("TMPDIR");
  std::string scratch = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmback-make-corpus.XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  int status = 0;
  try {
    vmback::Env* env = vmback::Env::Default();
    vmback::MakePacks(env, scratch);
    vmback::MakeManifests(env, scratch);
    vmback::MakeBlockmaps(env, scratch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_corpus: %s\n", e.what());
    status = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  return status;
}
