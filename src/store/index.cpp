#include "store/index.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {
constexpr char kIndexMagic[8] = {'V', 'M', 'B', 'I', 'N', 'D', 'X', '\n'};
constexpr uint32_t kIndexVersion = 1;
constexpr size_t kIndexEntrySize = kPackEntrySize;  // the same layout
}  // namespace

uint32_t BlobIndex::AddPack(const Hash& pack_id) {
  auto [it, inserted] = pack_numbers_.emplace(pack_id, static_cast<uint32_t>(packs_.size()));
  if (inserted) packs_.push_back(pack_id);
  return it->second;
}

void BlobIndex::AddEntries(uint32_t pack, const std::vector<PackEntry>& entries) {
  for (const auto& e : entries)
    Insert(e.id, BlobLocation{pack, e.type, e.comp, e.offset, e.stored_len, e.raw_len});
}

BlobTable::BlobTable() : key_(HashKey()) {}

size_t BlobTable::Home(const Hash& id, size_t capacity) const {
  return static_cast<size_t>((static_cast<unsigned __int128>(KeyedHash(id, key_)) * capacity) >> 64);
}

void BlobTable::Reserve(size_t n) {
  // At most three quarters full.
  if (n > size_ && n / 3 * 4 + 16 > slots_.size()) Rehash(n / 3 * 4 + 16);
}

void BlobTable::Rehash(size_t capacity) {
  LargeArray<Slot> old(capacity, "the blob index");
  old.swap(slots_);
  for (auto& s : slots_) s.loc.type = kEmptySlot;
  for (const auto& s : old) {
    if (s.loc.type == kEmptySlot) continue;
    size_t i = Home(s.id, slots_.size());
    while (slots_[i].loc.type != kEmptySlot) i = i + 1 == slots_.size() ? 0 : i + 1;
    slots_[i] = s;
  }
}

std::pair<const BlobLocation*, bool> BlobTable::Emplace(const Hash& id, const BlobLocation& loc) {
  // Grows by half: the old and the new array live side by side while it
  // moves, so this keeps the peak at 2.5 times the array, not 3.
  if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(std::max<size_t>(64, slots_.size() + slots_.size() / 2));
  size_t i = Home(id, slots_.size());
  while (slots_[i].loc.type != kEmptySlot) {
    if (slots_[i].id == id) return {&slots_[i].loc, false};
    i = i + 1 == slots_.size() ? 0 : i + 1;
  }
  slots_[i].id = id;
  slots_[i].loc = loc;
  size_++;
  return {&slots_[i].loc, true};
}

const BlobLocation* BlobTable::Find(const Hash& id) const {
  if (slots_.empty()) return nullptr;
  size_t i = Home(id, slots_.size());
  while (slots_[i].loc.type != kEmptySlot) {
    if (slots_[i].id == id) return &slots_[i].loc;
    i = i + 1 == slots_.size() ? 0 : i + 1;
  }
  return nullptr;
}

size_t BlobTable::Probes(const Hash& id) const {
  if (slots_.empty()) return 0;
  size_t i = Home(id, slots_.size()), n = 1;
  while (slots_[i].loc.type != kEmptySlot && slots_[i].id != id) {
    i = i + 1 == slots_.size() ? 0 : i + 1;
    n++;
  }
  return n;
}

void BlobIndex::Insert(const Hash& id, const BlobLocation& loc) {
  auto [at, inserted] = map_.Emplace(id, loc);
  if (inserted || at->pack == loc.pack) return;
  auto& alts = alternates_[id];
  for (const auto& a : alts)
    if (a.pack == loc.pack) return;
  alts.push_back(loc);
}

std::vector<BlobLocation> BlobIndex::Locations(const Hash& id) const {
  std::vector<BlobLocation> out;
  const BlobLocation* at = map_.Find(id);
  if (!at) return out;
  out.push_back(*at);
  if (auto a = alternates_.find(id); a != alternates_.end())
    out.insert(out.end(), a->second.begin(), a->second.end());
  return out;
}

const BlobLocation* BlobIndex::Find(const Hash& id) const {
  return map_.Find(id);
}

std::string EncodeIndexFile(const IndexFile& f, const Sealer* sealer) {
  std::string out(kIndexMagic, 8);
  PutU32(&out, kIndexVersion);
  PutU32(&out, static_cast<uint32_t>(f.packs.size()));
  for (const auto& [pack, entries] : f.packs) {
    out.append(reinterpret_cast<const char*>(pack.bytes.data()), 32);
    PutU32(&out, static_cast<uint32_t>(entries.size()));
    for (const auto& e : entries) EncodePackEntry(&out, e);
  }
  Hash h = Sha256(out);
  out.append(reinterpret_cast<const char*>(h.bytes.data()), 32);
  return sealer ? SealFile(*sealer, out, kIndexAd) : out;
}

void VisitIndexFile(std::string_view data, const std::string& where, const Sealer* sealer,
                    const std::function<void(const Hash& pack, const std::vector<PackEntry>& entries)>& each) {
  std::string opened;
  if (sealer) {
    opened = OpenFile(*sealer, data, kIndexAd, where);
    data = opened;
  }
  if (data.size() < 16 + 32 || std::memcmp(data.data(), kIndexMagic, 8) != 0)
    ThrowCorrupt(where + ": not a vmback index file");
  Hash want;
  std::memcpy(want.bytes.data(), data.data() + data.size() - 32, 32);
  std::string_view body = data.substr(0, data.size() - 32);
  if (Sha256(body) != want) ThrowCorrupt(where + ": index checksum mismatch");
  if (GetU32(body.data() + 8) != kIndexVersion) ThrowCorrupt(where + ": unsupported index version");
  const uint32_t npacks = GetU32(body.data() + 12);
  // Counts come from a disk: each pack takes at least 36 bytes and each entry
  // kIndexEntrySize, so the file's size bounds both before anything is
  // reserved. Lengths in the entries are bounded by DecodeValidPackEntry.
  if (npacks > (body.size() - 16) / 36) ThrowCorrupt(where + ": index truncated");
  // Two passes over the file: the first checks all of it, the second hands
  // it out, so that a file is used whole or not at all. One pack's entries
  // at a time: the file is not copied whole into another form.
  std::vector<PackEntry> entries;
  for (bool deliver : {false, true}) {
    size_t pos = 16;
    for (uint32_t i = 0; i < npacks; i++) {
      if (pos + 36 > body.size()) ThrowCorrupt(where + ": index truncated");
      Hash pack;
      std::memcpy(pack.bytes.data(), body.data() + pos, 32);
      uint32_t n = GetU32(body.data() + pos + 32);
      pos += 36;
      if (uint64_t{n} * kIndexEntrySize > body.size() - pos) ThrowCorrupt(where + ": index truncated");
      entries.resize(n);
      for (uint32_t k = 0; k < n; k++) {
        if (!DecodeValidPackEntry(body.data() + pos, &entries[k], sealer))
          ThrowCorrupt(where + ": index entry " + std::to_string(k) + " of pack " + pack.Hex() +
                       " is invalid (" + std::to_string(entries[k].stored_len) + " bytes stored, " +
                       std::to_string(entries[k].raw_len) + " raw, at offset " + std::to_string(entries[k].offset) +
                       ")");
        pos += kIndexEntrySize;
      }
      if (deliver) each(pack, entries);
    }
    if (pos != body.size()) ThrowCorrupt(where + ": trailing bytes in index");
  }
}

IndexFile DecodeIndexFile(std::string_view data, const std::string& where, const Sealer* sealer) {
  IndexFile f;
  VisitIndexFile(data, where, sealer,
                 [&](const Hash& pack, const std::vector<PackEntry>& entries) { f.packs.emplace_back(pack, entries); });
  return f;
}

}  // namespace vmback
