// Tests for encrypted stores (issue 18; docs/FORMAT.md "Encrypted stores"):
// init and open with each key source, round trips of every kind of sealed
// object, a flipped bit in each detected and named, objects swapped between
// positions detected, key changes, and that no plain text or plain SHA-256
// of a stored block appears in the store's files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crypto/key_wrap.h"
#include "helpers/test_util.h"
#include "os/env.h"
#include "store/manifest.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vmback {
namespace {

namespace fs = std::filesystem;
using test::ReadFile, test::TempDir, test::WriteFile;

constexpr KdfParams kFastKdf{1, kMinKdfMemBytes};

ErrorKind KindOf(const std::function<void()>& fn, std::string* message = nullptr) {
  return test::ErrorKindOf(fn, message);
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
  ASSERT_TRUE(f) << path;
}

std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  return out;
}

Manifest SampleManifest(const std::string& name, const Hash& subtree) {
  Manifest m;
  m.name = PointName::Parse(name, "test");
  m.host = "secret-host-name";
  Entry root;
  root.type = EntryType::kDir;
  root.subtree = subtree;
  m.volumes.push_back({"secret-volume-name", "/x", root});
  return m;
}

class EncryptedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_ / "store";
    key_file_ = tmp_ / "store.key";
    sources_.key_file = key_file_;
  }

  void Init(const std::vector<std::string>& mirrors = {}) {
    StoreInitEncryption enc;
    enc.sources = sources_;
    enc.kdf = kFastKdf;
    Store::Init(env_, dir_, 4096, mirrors, &enc);
  }
  std::unique_ptr<Store> Open(LockMode mode, const KeySources& keys) {
    StoreOptions o;
    o.keys = keys;
    return Store::Open(env_, dir_, mode, &log_, o);
  }
  std::unique_ptr<Store> OpenX() { return Open(LockMode::kExclusive, sources_); }
  std::unique_ptr<Store> OpenS() { return Open(LockMode::kShared, sources_); }

  // A point of one file of blocks plus a directory: every kind of blob, an
  // index file and a manifest. Returns the blocks by id.
  std::map<Hash, std::string> Fill(Store* s, const std::string& point = "2026-12-05T080000Z") {
    std::map<Hash, std::string> blocks;
    std::vector<Hash> ids;
    for (int i = 0; i < 6; i++) {
      std::string raw = test::RandomBytes(4096, 100 + i);
      Hash id = s->PutRaw(BlobType::kData, raw);
      blocks[id] = raw;
      ids.push_back(id);
    }
    Hash list = s->PutRaw(BlobType::kList, EncodeIdList(ids));
    Entry f;
    f.name = "secret-file-name.img";
    f.type = EntryType::kFile;
    f.size = 6 * 4096;
    f.content = {list};
    Hash tree = s->PutRaw(BlobType::kTree, EncodeTree({f}));
    s->Flush();
    s->WriteManifest(SampleManifest(point, tree));
    return blocks;
  }

  TempDir tmp_;
  std::string dir_, key_file_;
  KeySources sources_;
  Env* env_ = Env::Default();
  Logger log_{LogLevel::kError, false};
};

TEST_F(EncryptedStoreTest, InitMakesKeyFileAndRecordsEncryption) {
  Init();
  EXPECT_TRUE(Contains(ReadFile(key_file_), "vmback-key 1\n"));
  EXPECT_EQ(fs::status(key_file_).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  nlohmann::json config = nlohmann::json::parse(ReadFile(dir_ + "/config.json"));
  EXPECT_EQ(config.at("version"), kEncryptedStoreFormatVersion);
  EXPECT_EQ(config.at("encryption").at("cipher"), "aes-256-gcm-hmac-subkey");
  ASSERT_EQ(config.at("encryption").at("keys").size(), 1u);
  EXPECT_EQ(config["encryption"]["keys"][0].at("label"), "initial");
  EXPECT_EQ(config["encryption"]["keys"][0].at("kind"), "key-file");
  EXPECT_FALSE(Contains(ReadFile(dir_ + "/config.json"), ReadFile(key_file_).substr(13, 64)));
}

TEST_F(EncryptedStoreTest, EveryKindRoundTrips) {
  Init();
  std::map<Hash, std::string> blocks;
  {
    auto s = OpenX();
    ASSERT_TRUE(s->encrypted());
    blocks = Fill(s.get());
  }
  auto s = OpenS();
  ASSERT_EQ(s->ListPoints(), std::vector<std::string>{"2026-12-05T080000Z"});
  Manifest m = s->ReadPoint("2026-12-05T080000Z");
  EXPECT_EQ(m.host, "secret-host-name");
  std::vector<Entry> tree = DecodeTree(s->Get(m.volumes[0].root.subtree, BlobType::kTree), "tree");
  ASSERT_EQ(tree.size(), 1u);
  EXPECT_EQ(tree[0].name, "secret-file-name.img");
  std::vector<Hash> ids = DecodeIdList(s->Get(tree[0].content[0], BlobType::kList), "list");
  ASSERT_EQ(ids.size(), 6u);
  for (const auto& id : ids) EXPECT_EQ(s->Get(id, BlobType::kData), blocks.at(id));
}

TEST_F(EncryptedStoreTest, IdsAreKeyedAndTwoStoresShareNone) {
  Init();
  std::map<Hash, std::string> a;
  {
    auto s = OpenX();
    a = Fill(s.get());
  }
  TempDir other;
  StoreInitEncryption enc;
  enc.sources.key_file = other / "k";
  Store::Init(env_, other / "store", 4096, {}, &enc);
  StoreOptions o;
  o.keys = enc.sources;
  auto t = Store::Open(env_, other / "store", LockMode::kExclusive, &log_, o);
  std::map<Hash, std::string> b = Fill(t.get());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [id, raw] : a) {
    EXPECT_EQ(b.count(id), 0u) << "the same id in two stores";
    EXPECT_NE(id, Sha256(raw));
  }
}

TEST_F(EncryptedStoreTest, NoPlainTextOrPlainHashInAnyFile) {
  Init();
  std::map<Hash, std::string> blocks;
  {
    auto s = OpenX();
    blocks = Fill(s.get());
  }
  size_t scanned = 0;
  for (const auto& path : FilesUnder(dir_)) {
    const std::string data = ReadFile(path);
    scanned += data.size();
    for (const auto& [id, raw] : blocks) {
      Hash plain_hash = Sha256(raw);
      const std::string raw_hash(reinterpret_cast<const char*>(plain_hash.bytes.data()), 32);
      EXPECT_FALSE(Contains(data, raw_hash)) << path << " holds a plain SHA-256 of a block";
      EXPECT_FALSE(Contains(data, plain_hash.Hex())) << path << " holds a plain SHA-256 (hex) of a block";
      // Any 16 bytes of the block.
      for (size_t off = 0; off + 16 <= raw.size(); off += 16)
        ASSERT_FALSE(Contains(data, raw.substr(off, 16))) << path << " holds plain text of a block at " << off;
    }
    for (const char* secret : {"secret-volume-name", "secret-file-name", "secret-host-name"})
      EXPECT_FALSE(Contains(data, secret)) << path << " holds " << secret;
  }
  EXPECT_GT(scanned, 6u * 4096);
}

TEST_F(EncryptedStoreTest, MissingOrWrongKeyIsAConfigErrorNamingTheSources) {
  Init();
  { Fill(OpenX().get()); }
  std::string msg;
  KeySources none;
  EXPECT_EQ(KindOf([&] { Open(LockMode::kShared, none); }, &msg), ErrorKind::kConfig);
  EXPECT_TRUE(Contains(msg, "is encrypted")) << msg;
  EXPECT_TRUE(Contains(msg, "--key-file")) << msg;

  KeySources missing;
  missing.key_file = tmp_ / "no-such.key";
  EXPECT_EQ(KindOf([&] { Open(LockMode::kShared, missing); }, &msg), ErrorKind::kConfig);
  EXPECT_TRUE(Contains(msg, "no-such.key: not there")) << msg;

  KeySources wrong;
  wrong.key_file = tmp_ / "wrong.key";
  WriteFile(wrong.key_file, FormatKeyFile(SecretKey::Random()));
  wrong.passphrase_file = tmp_ / "pass";
  WriteFile(wrong.passphrase_file, "not it\n");
  EXPECT_EQ(KindOf([&] { Open(LockMode::kShared, wrong); }, &msg), ErrorKind::kConfig);
  EXPECT_TRUE(Contains(msg, "wrong.key: opens none")) << msg;
  EXPECT_TRUE(Contains(msg, "VMBACK_PASSPHRASE_FILE")) << msg;
}

TEST_F(EncryptedStoreTest, PassphraseFileAndCredentialsOpen) {
  WriteFile(tmp_ / "pass", "correct horse battery\n");
  sources_ = KeySources{};
  sources_.passphrase_file = tmp_ / "pass";
  Init();
  std::map<Hash, std::string> blocks;
  {
    auto s = OpenX();
    blocks = Fill(s.get());
  }
  // The same passphrase as a systemd credential.
  fs::create_directory(tmp_ / "creds");
  WriteFile(tmp_ / "creds/vmback.passphrase", "correct horse battery");
  KeySources creds;
  creds.credentials_dir = tmp_ / "creds";
  auto s = Open(LockMode::kShared, creds);
  for (const auto& [id, raw] : blocks) EXPECT_EQ(s->Get(id), raw);
}

TEST_F(EncryptedStoreTest, KeysAddedAndRemoved) {
  Init();
  {
    auto s = OpenX();
    Fill(s.get());
    std::vector<WrappedKey> keys = s->Keys();
    SecretKey second = SecretKey::Random();
    WriteFile(tmp_ / "second.key", FormatKeyFile(second));
    keys.push_back(WrapWithKeyFile(s->master_key(), s->store_id(), second, "second"));
    keys.erase(keys.begin());  // the initial one removed
    s->SetKeys(keys);
  }
  std::string msg;
  EXPECT_EQ(KindOf([&] { OpenS(); }, &msg), ErrorKind::kConfig) << "a removed key still opens the store";
  KeySources second;
  second.key_file = tmp_ / "second.key";
  EXPECT_EQ(Open(LockMode::kShared, second)->ListPoints().size(), 1u);
}

// A key removed while a mirror was absent is removed from the mirror too by
// the next Sync (the keys of the newest key change win), so the old key
// opens neither copy afterwards.
TEST_F(EncryptedStoreTest, KeyChangesReachACopyThatWasAbsent) {
  const std::string mirror = tmp_ / "mirror";
  Init({mirror});
  { Fill(OpenX().get()); }
  fs::rename(mirror, tmp_ / "unplugged");
  KeySources second;
  second.key_file = tmp_ / "second.key";
  {
    auto s = OpenX();
    ASSERT_EQ(s->absent_copies().size(), 1u);
    SecretKey k2 = SecretKey::Random();
    WriteFile(second.key_file, FormatKeyFile(k2));
    s->SetKeys({WrapWithKeyFile(s->master_key(), s->store_id(), k2, "second")});
  }
  fs::rename(tmp_ / "unplugged", mirror);
  // The mirror alone still has the old keys.
  nlohmann::json before = nlohmann::json::parse(ReadFile(mirror + "/config.json"));
  EXPECT_EQ(before["encryption"]["keys"][0]["label"], "initial");
  {
    auto s = Open(LockMode::kExclusive, second);
    s->Sync(false);
  }
  nlohmann::json after = nlohmann::json::parse(ReadFile(mirror + "/config.json"));
  EXPECT_EQ(after["encryption"]["keys"].size(), 1u);
  EXPECT_EQ(after["encryption"]["keys"][0]["label"], "second");
  EXPECT_EQ(after["encryption"]["generation"], 1);
  StoreOptions o;
  o.keys = sources_;  // the removed initial key
  EXPECT_EQ(KindOf([&] { Store::Open(env_, mirror, LockMode::kShared, &log_, o); }), ErrorKind::kConfig);
  o.keys = second;
  EXPECT_EQ(Store::Open(env_, mirror, LockMode::kShared, &log_, o)->ListPoints().size(), 1u);
}

// Opened without_key (store sync, key list): the copies are brought in step
// byte for byte, the keys are listed, and nothing sealed is read or written.
TEST_F(EncryptedStoreTest, SyncWithoutTheKeyCopiesSealedFilesAsTheyAre) {
  const std::string mirror = tmp_ / "mirror";
  Init({mirror});
  fs::rename(mirror, tmp_ / "unplugged");
  std::map<Hash, std::string> blocks;
  { blocks = Fill(OpenX().get()); }
  fs::rename(tmp_ / "unplugged", mirror);
  StoreOptions o;  // no key source at all
  o.without_key = true;
  {
    auto s = Store::Open(env_, dir_, LockMode::kExclusive, &log_, o);
    EXPECT_TRUE(s->encrypted());
    ASSERT_EQ(s->Keys().size(), 1u);
    EXPECT_EQ(s->Keys()[0].label, "initial");
    SyncStats st = s->Sync(false);
    EXPECT_GE(st.packs_copied, 1u);
    EXPECT_EQ(st.copied_to[1], st.packs_copied + 1) << "the packs and the one manifest";
    std::string msg;
    EXPECT_EQ(KindOf([&] { s->Get(blocks.begin()->first); }, &msg), ErrorKind::kConfig);
    EXPECT_TRUE(Contains(msg, "opened without its key")) << msg;
    EXPECT_EQ(KindOf([&] { s->BlobId("x"); }), ErrorKind::kConfig);
    EXPECT_EQ(KindOf([&] { s->PutRaw(BlobType::kData, "plain text must never be written"); }),
              ErrorKind::kConfig);
    EXPECT_EQ(KindOf([&] { s->ReadPoint("2026-12-05T080000Z"); }), ErrorKind::kConfig);
  }
  for (const auto& f : FilesUnder(dir_)) {
    const std::string rel = f.substr(dir_.size());
    if (rel.rfind("/packs/", 0) == 0 || rel.rfind("/index/", 0) == 0 || rel.rfind("/points/", 0) == 0) {
      EXPECT_EQ(ReadFile(mirror + rel), ReadFile(f)) << rel << " not copied byte for byte";
    }
  }
  // The mirror alone, with the key, holds the point.
  fs::rename(dir_, tmp_ / "gone");
  StoreOptions k;
  k.keys = sources_;
  auto m = Store::Open(env_, mirror, LockMode::kShared, &log_, k);
  Manifest p = m->ReadPoint("2026-12-05T080000Z");
  EXPECT_EQ(p.host, "secret-host-name");
  for (const auto& [id, raw] : blocks) EXPECT_EQ(m->Get(id), raw);
}

// A flipped bit in each kind of sealed object is damage naming the object.
TEST_F(EncryptedStoreTest, FlippedBitInEveryKindIsDamageNamed) {
  Init();
  std::map<Hash, std::string> blocks;
  {
    auto s = OpenX();
    blocks = Fill(s.get());
  }
  auto s = OpenS();
  BlobIndex index = s->IndexSnapshot();
  ASSERT_EQ(index.packs().size(), 2u);  // the data blobs; the list and the tree
  // A data blob: the bit in the middle of its sealed bytes.
  const Hash victim = blocks.begin()->first;
  const BlobLocation* loc = index.Find(victim);
  ASSERT_NE(loc, nullptr);
  const std::string pack = s->PackPath(index.packs()[loc->pack]);
  s.reset();

  FlipByte(pack, loc->offset + loc->stored_len / 2);
  {
    auto r = OpenS();
    std::string msg;
    EXPECT_EQ(KindOf([&] { r->Get(victim); }, &msg), ErrorKind::kCorrupt);
    EXPECT_TRUE(Contains(msg, pack)) << msg;
    EXPECT_TRUE(Contains(msg, victim.Hex())) << msg;
    // The others are whole.
    for (const auto& [id, raw] : blocks) {
      if (id != victim) {
        EXPECT_EQ(r->Get(id), raw);
      }
    }
  }
  FlipByte(pack, loc->offset + loc->stored_len / 2);  // back

  // The pack's entry table: sealed, so a flipped bit makes it not open.
  {
    auto file = env_->OpenRead(pack);
    Sealer sealer(OpenS()->master_key());
    ASSERT_EQ(ReadPackEntries(file.get(), &sealer).size(), blocks.size());
    EXPECT_EQ(KindOf([&] { ReadPackEntries(file.get()); }), ErrorKind::kCorrupt) << "read as a plain pack";
    const uint64_t size = file->Size();
    file.reset();
    // The table ends where the footer starts; its last byte is the tag's.
    FlipByte(pack, size - kPackFooterSize - 1);
    file = env_->OpenRead(pack);
    std::string msg;
    EXPECT_EQ(KindOf([&] { ReadPackEntries(file.get(), &sealer); }, &msg), ErrorKind::kCorrupt);
    EXPECT_TRUE(Contains(msg, pack)) << msg;
    file.reset();
    FlipByte(pack, size - kPackFooterSize - 1);
  }

  // An index file: not trusted, so the store reads the pack's own table.
  {
    std::string idx;
    for (const auto& n : env_->ListDir(dir_ + "/index")) idx = dir_ + "/index/" + n;
    ASSERT_FALSE(idx.empty());
    Sealer sealer(OpenS()->master_key());
    EXPECT_NO_THROW(DecodeIndexFile(ReadFile(idx), idx, &sealer));
    FlipByte(idx, 20);
    std::string msg;
    EXPECT_EQ(KindOf([&] { DecodeIndexFile(ReadFile(idx), idx, &sealer); }, &msg), ErrorKind::kCorrupt);
    EXPECT_TRUE(Contains(msg, idx)) << msg;
    auto r = OpenS();
    for (const auto& [id, raw] : blocks) EXPECT_EQ(r->Get(id), raw);
  }

  // A manifest.
  {
    const std::string path = dir_ + "/points/2026-12-05T080000Z.json";
    FlipByte(path, 40);
    auto r = OpenS();
    std::string msg;
    EXPECT_EQ(KindOf([&] { r->ReadPoint("2026-12-05T080000Z"); }, &msg), ErrorKind::kCorrupt);
    EXPECT_TRUE(Contains(msg, path)) << msg;
  }
}

// Objects moved or swapped between positions do not open.
TEST_F(EncryptedStoreTest, SwappedObjectsAreDamage) {
  Init();
  std::map<Hash, std::string> blocks;
  {
    auto s = OpenX();
    blocks = Fill(s.get(), "2026-12-05T080000Z");
    Fill(s.get(), "2026-12-06T080000Z");
  }
  // Two data blobs of the same length swap their sealed bytes.
  auto s = OpenS();
  BlobIndex index = s->IndexSnapshot();
  const std::string pack = s->PackPath(index.packs()[0]);
  s.reset();
  auto it = blocks.begin();
  const Hash a = it->first, b = (++it)->first;
  const BlobLocation la = *index.Find(a), lb = *index.Find(b);
  ASSERT_EQ(la.stored_len, lb.stored_len);
  {
    std::string data = ReadFile(pack);
    std::string sa = data.substr(la.offset, la.stored_len), sb = data.substr(lb.offset, lb.stored_len);
    data.replace(la.offset, la.stored_len, sb);
    data.replace(lb.offset, lb.stored_len, sa);
    WriteFile(pack, data);
  }
  auto r = OpenS();
  EXPECT_EQ(KindOf([&] { r->Get(a); }), ErrorKind::kCorrupt);
  EXPECT_EQ(KindOf([&] { r->Get(b); }), ErrorKind::kCorrupt);
  r.reset();

  // Two manifests swap names.
  const std::string p1 = dir_ + "/points/2026-12-05T080000Z.json", p2 = dir_ + "/points/2026-12-06T080000Z.json";
  fs::rename(p1, tmp_ / "x");
  fs::rename(p2, p1);
  fs::rename(tmp_ / "x", p2);
  r = OpenS();
  EXPECT_EQ(KindOf([&] { r->ReadPoint("2026-12-05T080000Z"); }), ErrorKind::kCorrupt);
  EXPECT_EQ(KindOf([&] { r->ReadPoint("2026-12-06T080000Z"); }), ErrorKind::kCorrupt);
}

// A forged entry claiming more than the format allows is refused on its
// lengths, before anything is allocated or opened.
TEST_F(EncryptedStoreTest, ForgedLengthsRefusedBeforeAllocation) {
  Sealer sealer(SecretKey::Random());
  PackEntry e;
  e.type = BlobType::kData;
  e.comp = Compression::kNone;
  e.raw_len = 4096;
  e.stored_len = 4096;  // a sealed blob is kSealOverhead longer
  EXPECT_TRUE(BlobLengthsValid(e));
  EXPECT_FALSE(BlobLengthsValid(e, &sealer));
  e.stored_len = 4096 + kSealOverhead;
  EXPECT_TRUE(BlobLengthsValid(e, &sealer));
  e.stored_len = 0xffffffffu;
  e.comp = Compression::kZstd;
  EXPECT_FALSE(BlobLengthsValid(e, &sealer));
  std::string msg;
  EXPECT_EQ(KindOf([&] { DecodeBlob(e, std::string_view("x", 1), "forged", &sealer); }, &msg), ErrorKind::kCorrupt);
  EXPECT_TRUE(Contains(msg, "shorter than its seal")) << msg;
}

}  // namespace
}  // namespace vmback
