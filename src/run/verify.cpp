#include "run/verify.h"

#include <algorithm>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <set>
#include <unordered_set>

#include "store/gc.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/rate_pacer.h"
#include "util/thread_pool.h"

namespace vmback {

namespace {

using HashSet = std::unordered_set<Hash, HashHasher>;

struct PackResult {
  std::vector<Hash> good, bad;
  uint64_t blobs = 0, bytes = 0, bad_blobs = 0;
  std::vector<std::string> problems;
  uint64_t read_start_ns = 0, read_end_ns = 0;  // Env::NowNanos
};

// Reads a whole pack: its own hash (the file name), its entry table, and
// every blob re-hashed. Blobs that check out are good even in a damaged pack.
// The file is read in order, kCopyBufferBytes at a time; what is kept is the
// piece read and the blob that runs past its end (bounded by the format's
// largest blob), not the pack. sealer: the store's (null for a plain store):
// each blob is opened and its keyed id checked.
PackResult CheckPack(Env* env, const std::string& path, const Hash& name, RatePacer* pacer, const Sealer* sealer) {
  PackResult r;
  r.read_start_ns = env->NowNanos();
  auto file = env->OpenRead(path);
  const uint64_t size = file->Size();
  std::vector<PackEntry> entries;
  try {
    entries = ReadPackEntries(file.get(), sealer);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    r.problems.push_back(e.what());
    entries = ScanPackBlobs(file.get(), sealer);
  }
  // Both give entries that lie inside the file.
  std::sort(entries.begin(), entries.end(),
            [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
  Sha256Stream whole;
  std::string window;  // the file's bytes from window_start on
  uint64_t window_start = 0;
  size_t next = 0;     // the first entry not yet checked
  for (uint64_t pos = 0; pos < size;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kCopyBufferBytes, size - pos));
    pacer->Take(n);
    const size_t old = window.size();
    window.resize(old + n);
    const size_t got = file->ReadAt(pos, window.data() + old, n);
    r.bytes += got;  // counted for progress by the pacer
    if (got != n) {
      r.read_end_ns = env->NowNanos();
      r.problems.push_back(path + ": short read");
      return r;
    }
    whole.Update(window.data() + old, n);
    pos += n;
    for (; next < entries.size() && entries[next].offset + entries[next].stored_len <= pos; next++) {
      const PackEntry& e = entries[next];
      r.blobs++;
      try {
        DecodeBlob(e, std::string_view(window).substr(e.offset - window_start, e.stored_len), path, sealer);
        r.good.push_back(e.id);
      } catch (const Error& err) {
        if (err.kind() != ErrorKind::kCorrupt) throw;
        r.bad_blobs++;
        r.bad.push_back(e.id);
        r.problems.push_back(err.what());
      }
    }
    const uint64_t keep_from = next < entries.size() ? std::min(entries[next].offset, pos) : pos;
    window.erase(0, keep_from - window_start);
    window_start = keep_from;
  }
  r.read_end_ns = env->NowNanos();
  if (whole.Finish() != name) r.problems.insert(r.problems.begin(), path + ": file does not match its name (damaged)");
  return r;
}

// A pack damaged on every copy was checked from its entry table or, where
// that is damaged too, blob by blob from the headers. A header's own copy of
// an id can be what is damaged while the blob is whole where the index puts
// it, which is where every reader goes (and a bad length in a header hides
// the blobs after it from the scan). So the index's entries in such packs
// that no copy gave whole are read once more, from each copy (ReadBlob
// checks each against its id); and a bad id the index does not place in
// the pack is no blob a reader asks it for, so it is not counted as one.
void RecheckByIndex(Store* store, const BlobIndex& index, const std::vector<HashSet>& present,
                    const std::vector<std::unique_ptr<RatePacer>>& pacers,
                    std::vector<std::pair<Hash, std::vector<Hash>>>* unhealed, HashSet* good) {
  if (unhealed->empty()) return;
  std::unordered_map<Hash, uint32_t, HashHasher> wanted;  // pack -> its number in the index
  for (const auto& [pack, bad] : *unhealed) wanted.emplace(pack, UINT32_MAX);
  for (uint32_t i = 0; i < index.packs().size(); i++)
    if (auto it = wanted.find(index.packs()[i]); it != wanted.end()) it->second = i;
  std::unordered_map<uint32_t, std::vector<PackEntry>> entries;  // by pack number
  for (const auto& [pack, number] : wanted)
    if (number != UINT32_MAX) entries[number];
  auto consider = [&](const Hash& id, const BlobLocation& loc) {
    auto it = entries.find(loc.pack);
    if (it != entries.end() && !good->count(id)) it->second.push_back(loc.ToEntry(id));
  };
  for (const auto& [id, loc] : index.entries()) consider(id, loc);
  for (const auto& [id, locs] : index.alternates())
    for (const auto& loc : locs) consider(id, loc);
  for (auto& [pack, bad] : *unhealed) {
    const uint32_t number = wanted[pack];
    if (number == UINT32_MAX) continue;  // not in the index: nothing to go by
    for (size_t c = 0; c < present.size(); c++) {
      if (!present[c].count(pack)) continue;
      std::unique_ptr<ReadableFile> file;
      try {
        file = store->env()->OpenRead(store->PackPath(c, pack));
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kNotFound) throw;
        continue;  // gone since it was read: its check said so
      }
      for (const auto& e : entries[number]) {
        if (good->count(e.id)) continue;
        pacers[c]->Take(e.stored_len);
        try {
          ReadBlob(file.get(), e, store->sealer());
          good->insert(e.id);
        } catch (const Error& err) {
          if (err.kind() != ErrorKind::kCorrupt) throw;
        }
      }
    }
    bad.erase(std::remove_if(bad.begin(), bad.end(),
                             [&](const Hash& id) {
                               for (const auto& loc : index.Locations(id))
                                 if (loc.pack == number) return false;
                               return true;
                             }),
              bad.end());
  }
}

// Problems found under one entry: path relative to it, reason, and whether
// it is a loss `vmback repair` recorded (a note) rather than damage.
struct Found {
  std::string path, reason;
  bool lost = false;
};
using Problems = std::vector<Found>;

// Byte ranges of a file, merged as they are added in order: "bytes 0..4096,
// 65536..69632".
class Ranges {
 public:
  void Add(uint64_t from, uint64_t to, uint64_t blocks) {
    blocks_ += blocks;
    if (!r_.empty() && r_.back().second == from) r_.back().second = to;
    else r_.emplace_back(from, to);
  }
  uint64_t blocks() const { return blocks_; }
  std::string Describe() const {
    std::string s = "bytes ";
    for (size_t i = 0; i < r_.size() && i < 8; i++)
      s += (i ? ", " : "") + std::to_string(r_[i].first) + ".." + std::to_string(r_[i].second);
    if (r_.size() > 8) s += " and " + Counted(r_.size() - 8, "more range");
    return s;
  }

 private:
  uint64_t blocks_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> r_;
};

constexpr char kRecordedLost[] = "recorded lost by 'vmback repair'";

class PointChecker {
 public:
  PointChecker(Store* store, const HashSet& good, const BlobIndex& index, VerifyReport* report)
      : store_(store), good_(good), index_(index), report_(report) {
    for (const auto& id : store->Lost()) lost_.insert(id);
  }

  void Check(const std::string& point) {
    Manifest m;
    try {
      m = store_->ReadPoint(point);
    } catch (const Error& e) {
      // An I/O error is not damage: verify fails with it (exit 1, not 3).
      if (e.kind() == ErrorKind::kIo) throw;
      report_->problems.push_back({point, store_->ManifestPath(point), e.what()});
      return;
    }
    for (const auto& v : m.volumes) {
      Problems found;
      try {
        CheckEntry(v.root, "", &found);
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::kIo) throw;
        found.push_back({"", e.what()});
      }
      for (const auto& f : found)
        (f.lost ? report_->lost : report_->problems)
            .push_back({point, f.path.empty() ? v.name : v.name + "/" + f.path, f.reason});
    }
  }

 private:
  static std::string Join(const std::string& a, const std::string& b) {
    return a.empty() ? b : b.empty() ? a : a + "/" + b;
  }

  void CheckEntry(const Entry& e, const std::string& rel, Problems* out) {
    if (e.type == EntryType::kDir) {
      if (!good_.count(e.subtree)) {
        bool lost = lost_.count(e.subtree) > 0;
        out->push_back({rel, "directory listing (tree " + e.subtree.Hex().substr(0, 16) + ") " +
                                 (lost ? std::string("was ") + kRecordedLost + "; everything below it is lost"
                                       : "is " + State(e.subtree) + "; everything below it is affected"),
                        lost});
        return;
      }
      // Unchanged directories are shared between points: check each tree
      // once, and report its problems under every path that holds it.
      for (const auto& f : CheckTree(e.subtree)) out->push_back({Join(rel, f.path), f.reason, f.lost});
    } else if (e.type == EntryType::kFile) {
      report_->files_checked++;
      const uint64_t bs = store_->block_size();
      const uint64_t nblocks = (e.size + bs - 1) / bs;
      uint64_t block = 0;
      Ranges bad, lost;
      std::string first_bad;
      auto add = [&](const Hash& id, uint64_t n, const std::string& what) {
        uint64_t from = std::min(e.size, block * bs), to = std::min(e.size, (block + n) * bs);
        if (lost_.count(id)) {
          lost.Add(from, to, n);
          return;
        }
        bad.Add(from, to, n);
        if (first_bad.empty()) first_bad = what + " " + id.Hex().substr(0, 16) + " is " + State(id);
      };
      for (const auto& list : e.content) {
        if (!good_.count(list)) {
          // Lists hold kIdsPerList ids each but the last.
          uint64_t n = std::min<uint64_t>(kIdsPerList, nblocks > block ? nblocks - block : 0);
          add(list, n, "block list");
          block += n;
          continue;
        }
        for (const auto& id : DecodeIdList(store_->Get(list, BlobType::kList), rel)) {
          if (!id.IsZero() && !good_.count(id)) add(id, 1, "block");
          block++;
        }
      }
      if (bad.blocks())
        out->push_back({rel, Counted(bad.blocks(), "bad or missing block") + " (" + bad.Describe() + "); " +
                                 first_bad});
      if (lost.blocks())
        out->push_back({rel, Counted(lost.blocks(), "block") + " " + kRecordedLost + " (" +
                                 lost.Describe() + "; a restore leaves them zero)",
                        true});
    }
  }

  const Problems& CheckTree(const Hash& id) {
    if (auto it = trees_.find(id); it != trees_.end()) return it->second;
    Problems found;
    for (const auto& child : DecodeTree(store_->Get(id, BlobType::kTree), "tree " + id.Hex()))
      CheckEntry(child, child.name, &found);
    return trees_.emplace(id, std::move(found)).first->second;
  }


  std::string State(const Hash& id) const { return index_.Find(id) ? "damaged" : "missing"; }

  Store* store_;
  const HashSet& good_;
  const BlobIndex& index_;
  VerifyReport* report_;
  HashSet lost_;
  std::unordered_map<Hash, Problems, HashHasher> trees_;
};

}  // namespace

namespace {
// 0.1 -> "10%", 0.125 -> "12.5%".
std::string FormatShare(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", fraction * 100);
  return buf;
}
}  // namespace

void ParseReadDataSubset(const std::string& text, int64_t now_ns, VerifyOptions* options) {
  auto bad = [&](const std::string& why) {
    ThrowConfig("--read-data-subset " + EscapeForTerminal(text) + ": " + why +
                " (give N/M, e.g. 1/4; auto/M for this week's part; or a percentage, e.g. 10%)");
  };
  auto number = [&](const std::string& s, uint64_t max) -> uint64_t {
    if (s.empty() || s.size() > 6 || !std::all_of(s.begin(), s.end(), ::isdigit)) bad("not a number: " + s);
    uint64_t v = std::stoull(s);
    if (v == 0 || v > max) bad(s + " is out of range");
    return v;
  };
  if (EndsWith(text, "%")) {
    std::string p = text.substr(0, text.size() - 1);
    size_t dot = p.find('.');
    std::string whole = p.substr(0, dot), frac = dot == std::string::npos ? "" : p.substr(dot + 1);
    if (whole.empty() || whole.size() > 3 || frac.size() > 3 || !std::all_of(whole.begin(), whole.end(), ::isdigit) ||
        !std::all_of(frac.begin(), frac.end(), ::isdigit))
      bad("not a percentage");
    double v = std::stod(whole + (frac.empty() ? "" : "." + frac));
    if (!(v > 0) || v > 100) bad("a percentage from above 0 to 100");
    options->subset_n = options->subset_m = 0;
    options->fraction = v >= 100 ? 0 : v / 100;
    return;
  }
  size_t slash = text.find('/');
  if (slash == std::string::npos) bad("no '/'");
  uint32_t m = static_cast<uint32_t>(number(text.substr(slash + 1), 65536));
  std::string n_text = text.substr(0, slash);
  uint32_t n;
  if (n_text == "auto") {
    constexpr int64_t kWeekNs = int64_t{7} * 24 * 3600 * 1000000000;
    n = static_cast<uint32_t>((now_ns > 0 ? now_ns / kWeekNs : 0) % m) + 1;
  } else {
    n = static_cast<uint32_t>(number(n_text, 65536));
    if (n > m) bad("part " + n_text + " of " + std::to_string(m) + " does not exist");
  }
  options->subset_n = n;
  options->subset_m = m;
  options->fraction = 0;
}

VerifyReport Verify(Store* store, Logger* log, const VerifyOptions& options) {
  VerifyReport report;
  const size_t ncopies = store->copies().size();
  for (const auto& c : store->copies()) report.copies.push_back(CopyReport{c});
  // An unmounted disk's copy is absent, or worse, was once made in the
  // empty mount point: say so whichever it is.
  std::vector<std::string> every_copy = store->copies();
  every_copy.insert(every_copy.end(), store->absent_copies().begin(), store->absent_copies().end());
  WarnAboutCopiesOnRootFileSystem(every_copy, log);
  // A copy that missed backups catches up first (a writer's job).
  if (ncopies > 1 && store->exclusive()) {
    SyncStats synced = store->Sync();
    // What a copy lacked and got from another counts as missing + repaired.
    for (size_t c = 0; c < synced.copied_to.size() && c < report.copies.size(); c++) {
      report.copies[c].packs_missing += synced.copied_to[c];
      report.copies[c].repaired += synced.copied_to[c];
      report.repaired += synced.copied_to[c];
    }
  }

  // Index files are a cache, but a copy must not keep a damaged one: it
  // would be read the day that copy is the primary.
  if (store->exclusive()) {
    std::vector<uint64_t> fixed = store->RepairIndexFiles();
    for (size_t c = 0; c < fixed.size() && c < report.copies.size(); c++) {
      report.copies[c].index_files_damaged += fixed[c];
      report.copies[c].repaired += fixed[c];
      report.repaired += fixed[c];
    }
  } else {
    // A damaged index file also hides which packs it named: the exclusive
    // pass repairs it and reads every pack.
    for (uint64_t n : store->RepairIndexFiles(/*check_only=*/true)) report.to_heal += n;
  }

  // Every pack on every copy, read in full and re-hashed.
  std::vector<std::vector<Hash>> listed(ncopies);
  std::set<Hash> all;
  for (size_t c = 0; c < ncopies; c++) {
    listed[c] = store->ListPackFiles(c);
    all.insert(listed[c].begin(), listed[c].end());
  }
  const bool heal = store->exclusive();
  // A checking pass counts what a copy lacks; its reads must not mend it
  // on the way (the exclusive pass heals, and reports, what was found).
  store->set_read_repair(heal);
  std::vector<std::unordered_set<Hash, HashHasher>> has(ncopies);
  for (size_t c = 0; c < ncopies; c++) has[c].insert(listed[c].begin(), listed[c].end());

  // A subset: the packs left out this time are not read.
  std::unordered_set<Hash, HashHasher> skipped;
  if (options.subset_m > 0 || options.fraction > 0) {
    std::mt19937_64 random(static_cast<uint64_t>(store->env()->NowNanos()));
    for (auto it = all.begin(); it != all.end();) {
      uint64_t key = 0;
      for (int i = 0; i < 8; i++) key = key << 8 | it->bytes[i];
      bool take = options.subset_m > 0 ? key % options.subset_m == options.subset_n - 1
                                       : std::uniform_real_distribution<double>(0, 1)(random) < options.fraction;
      if (take) {
        ++it;
      } else {
        skipped.insert(*it);
        it = all.erase(it);
      }
    }
    report.subset = options.subset_m > 0 ? std::to_string(options.subset_n) + "/" + std::to_string(options.subset_m)
                                         : FormatShare(options.fraction);
  }
  // A reader leaves out the packs no index file named at open: a backup
  // beside it may still be writing them to the other copies.
  if (!heal)
    for (const auto& p : store->unindexed_packs())
      if (all.erase(p)) skipped.insert(p);
  report.packs_skipped = skipped.size();
  // Progress: the bytes of every pack to be read, on every copy.
  uint64_t total = 0;
  for (size_t c = 0; c < ncopies; c++)
    for (const auto& p : listed[c])
      if (all.count(p)) {
        try {
          total += store->env()->Status(store->PackPath(c, p)).size;
        } catch (const Error&) {
          // Gone since it was listed: its read says so.
        }
      }
  Progress::Get().Start("verify of " + store->dir(), total, "checked");
  // --read-limit: each copy's reads paced on their own.
  std::vector<std::unique_ptr<RatePacer>> pacers;
  for (size_t c = 0; c < ncopies; c++) pacers.push_back(std::make_unique<RatePacer>(options.read_limit));

  HashSet good;
  // Packs with no whole copy, and the blobs bad on every copy of them.
  std::vector<std::pair<Hash, std::vector<Hash>>> unhealed_packs;
  // Per copy: its first read's start, its last read's end.
  std::vector<std::pair<uint64_t, uint64_t>> read_span(ncopies);
  {
    // Readers of their own for each copy (at least two, so that a copy is
    // read while a pack read from it before is hashed; the cores shared
    // out): every disk is read at once, each at its own pace. A fast copy
    // runs up to kLookaheadPacks packs ahead of a slow one; what is kept of
    // a pack checked ahead is its list of blob ids.
    constexpr size_t kLookaheadPacks = 64;
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<ThreadPool>> readers;
    for (size_t c = 0; c < ncopies; c++)
      readers.push_back(std::make_unique<ThreadPool>(std::max<unsigned>(2, cores / static_cast<unsigned>(ncopies))));
    struct Pending {
      Hash pack;
      std::vector<std::future<PackResult>> per_copy;  // invalid future = missing there
    };
    std::deque<Pending> in_flight;
    auto drain = [&] {
      Pending p = std::move(in_flight.front());
      in_flight.pop_front();
      report.packs++;
      std::vector<size_t> bad;
      bool any_whole = false;
      std::vector<std::string> problems;
      uint64_t damaged_blobs = 0;  // blobs of a damaged copy, if no copy is whole
      HashSet good_here, bad_here;
      for (size_t c = 0; c < ncopies; c++) {
        CopyReport& cr = report.copies[c];
        if (!p.per_copy[c].valid()) {
          cr.packs_missing++;
          bad.push_back(c);
          problems.push_back(store->PackPath(c, p.pack) + ": missing");
          continue;
        }
        PackResult r = p.per_copy[c].get();
        cr.packs_checked++;
        cr.bytes_read += r.bytes;
        if (!read_span[c].first || r.read_start_ns < read_span[c].first) read_span[c].first = r.read_start_ns;
        read_span[c].second = std::max(read_span[c].second, r.read_end_ns);
        good.insert(r.good.begin(), r.good.end());
        good_here.insert(r.good.begin(), r.good.end());
        bad_here.insert(r.bad.begin(), r.bad.end());
        report.bytes += r.bytes;
        if (r.problems.empty()) {
          if (!any_whole) report.blobs += r.blobs;  // counted once, not per copy
          any_whole = true;
        } else {
          damaged_blobs = std::max(damaged_blobs, r.blobs);
          cr.packs_damaged++;
          bad.push_back(c);
          for (auto& msg : r.problems) problems.push_back(msg);
          report.bad_blobs += r.bad_blobs;
        }
      }
      if (bad.empty()) return;
      if (any_whole && !heal) {
        report.to_heal += bad.size();
        return;
      }
      if (any_whole) {
        for (size_t c : bad) {
          if (store->RepairPack(p.pack, c)) {
            report.copies[c].repaired++;
            report.repaired++;
          } else {
            report.copies[c].unrepairable++;
            report.problems.push_back({"", store->PackPath(c, p.pack), "could not be repaired"});
          }
        }
        return;
      }
      report.bad_packs++;
      report.blobs += damaged_blobs;
      std::vector<Hash> bad_everywhere;
      for (const auto& id : bad_here)
        if (!good_here.count(id)) bad_everywhere.push_back(id);
      std::sort(bad_everywhere.begin(), bad_everywhere.end());
      unhealed_packs.emplace_back(p.pack, std::move(bad_everywhere));
      for (size_t c : bad) report.copies[c].unrepairable++;
      for (auto& msg : problems) report.problems.push_back({"", "", msg});
    };
    for (const auto& p : all) {
      Pending pending{p, {}};
      for (size_t c = 0; c < ncopies; c++) {
        if (!has[c].count(p)) {
          pending.per_copy.emplace_back();
          continue;
        }
        Env* env = store->env();
        std::string path = store->PackPath(c, p);
        RatePacer* pacer = pacers[c].get();
        const Sealer* sealer = store->sealer();
        pending.per_copy.push_back(
            readers[c]->Submit([env, path, p, pacer, sealer] { return CheckPack(env, path, p, pacer, sealer); }));
      }
      in_flight.push_back(std::move(pending));
      if (in_flight.size() > kLookaheadPacks) drain();
    }
    while (!in_flight.empty()) drain();
  }
  for (size_t c = 0; c < ncopies; c++)
    if (read_span[c].second > read_span[c].first)
      report.copies[c].read_seconds = static_cast<double>(read_span[c].second - read_span[c].first) / 1e9;
  // Manifests: each copy's must be whole; heal from another copy.
  if (ncopies > 1) {
    for (const auto& point : store->ListPoints()) {
      auto fixed = store->RepairManifest(point);
      if (!heal && std::count(fixed.begin(), fixed.end(), ManifestState::kGood) > 0) {
        report.to_heal += std::count(fixed.begin(), fixed.end(), ManifestState::kBad);
        continue;
      }
      for (size_t c = 0; c < ncopies; c++) {
        if (fixed[c] == ManifestState::kRepaired) {
          report.copies[c].manifests_damaged++;
          report.copies[c].repaired++;
          report.repaired++;
        } else if (fixed[c] == ManifestState::kBad) {
          report.copies[c].manifests_damaged++;
          report.copies[c].unrepairable++;
        }
      }
    }
  }
  BlobIndex index = store->IndexSnapshot();
  RecheckByIndex(store, index, has, pacers, &unhealed_packs, &good);
  // Blobs of packs not read this time: taken as they were (not checked).
  std::unordered_set<Hash, HashHasher> assumed;
  if (!skipped.empty()) {
    for (const auto& [id, loc] : index.entries())
      if (!good.count(id) && skipped.count(index.packs()[loc.pack])) assumed.insert(id);
    good.insert(assumed.begin(), assumed.end());
  }
  PointChecker checker(store, good, index, &report);
  for (const auto& point : store->ListPoints()) {
    report.points++;
    checker.Check(point);
  }
  // What each pack damaged on every copy costs: a bad blob whole in another
  // pack (a later backup wrote it afresh) costs nothing.
  uint64_t unhealed_total = 0;
  for (auto& [pack, bad] : unhealed_packs) {
    DamagedPack d{pack, {}, {}};
    for (const auto& id : bad) (good.count(id) ? d.healed : d.unhealed).push_back(id);
    unhealed_total += d.unhealed.size();
    report.damaged_packs.push_back(std::move(d));
  }
  if (!report.damaged_packs.empty()) {
    report.next_step = "run 'vmback repair' to rewrite the " + Counted(report.damaged_packs.size(), "pack") +
                       " damaged on every copy without their bad blobs";
    report.next_step += unhealed_total == 0
                            ? " (nothing is lost: every bad blob has a good copy in another pack)"
                            : "; the " + Counted(unhealed_total, "blob") +
                                  " no copy has are then recorded as lost (to get them back "
                                  "instead, first back up the same data again while it still exists)";
  }
  // Blocks recorded lost that a backup has written again are whole now.
  {
    std::vector<Hash> back;
    for (const auto& id : store->Lost())
      if (good.count(id)) back.push_back(id);
    if (!back.empty() && !heal) {
      report.to_heal++;  // forgotten by the exclusive pass
    } else if (!back.empty()) {
      store->ForgetLost(back);
      log->Info(Counted(back.size(), "block") + " recorded lost are whole again (a backup wrote them)");
    }
  }
  // Remember blobs with no good copy, so the next backup that reads their
  // data writes them afresh.
  std::vector<Hash> damaged;
  for (const auto& [id, loc] : index.entries())
    if (!good.count(id) || (assumed.count(id) && store->AnyDamaged({id}))) damaged.push_back(id);
  if (heal) {
    store->SetDamaged(damaged);
  } else {
    std::vector<Hash> before = store->damaged_ids();
    std::sort(before.begin(), before.end());
    std::sort(damaged.begin(), damaged.end());
    if (before != damaged) report.to_heal++;
  }
  auto line = [](const VerifyProblem& p) {
    return (p.point.empty() ? "" : p.point + ": ") + (p.path.empty() ? "" : p.path + ": ") + p.reason;
  };
  for (const auto& p : report.problems) log->Error(line(p));
  for (const auto& d : report.damaged_packs) log->Error(DescribeDamagedPack(store->PackPath(d.pack), d));
  for (const auto& p : report.lost) log->Warn("note: " + line(p));
  if (report.repaired)
    log->Warn("repaired " + Counted(report.repaired, "damaged or missing file") + " from other copies");
  if (!report.subset.empty())
    log->Info("read " + (options.subset_m > 0 ? "part " + report.subset : "a random " + report.subset) +
              " of the pack data: " + Counted(report.packs, "pack") + " read, " +
              std::to_string(report.packs_skipped) + " not read this time; every point's structure checked");
  return report;
}

std::string DescribeDamagedPack(const std::string& path, const DamagedPack& d) {
  std::string s = "pack " + path + " is damaged on every copy: ";
  if (d.healed.empty() && d.unhealed.empty())
    return s + "its table or blob headers, not its blobs (every blob reads whole where the index puts it; " +
           "nothing is lost)";
  s += Counted(d.healed.size() + d.unhealed.size(), "bad blob");
  if (!d.healed.empty())
    s += ", " + std::to_string(d.healed.size()) + " of them with a newer good copy in another pack (nothing lost)";
  if (!d.unhealed.empty())
    s += ", " + std::to_string(d.unhealed.size()) + " with no good copy anywhere (the files named above lose them)";
  return s;
}

RepairReport Repair(Store* store, Logger* log, bool dry_run) {
  RepairReport r;
  r.dry_run = dry_run;
  // Verify's own lines would repeat what repair reports below.
  Logger quiet(LogLevel::kError, false);
  r.verify = Verify(store, &quiet);
  if (r.verify.damaged_packs.empty()) return r;

  // Every blob of a doomed pack that is whole there is moved; a bad one is
  // dropped (healed: whole elsewhere) or recorded lost.
  BlobIndex index = store->IndexSnapshot();
  std::unordered_map<Hash, HashSet, HashHasher> bad_in;  // pack -> its bad blobs
  std::vector<Hash> doomed, lost;
  for (const auto& d : r.verify.damaged_packs) {
    doomed.push_back(d.pack);
    HashSet& bad = bad_in[d.pack];
    bad.insert(d.healed.begin(), d.healed.end());
    bad.insert(d.unhealed.begin(), d.unhealed.end());
    lost.insert(lost.end(), d.unhealed.begin(), d.unhealed.end());
    r.blobs_healed += d.healed.size();
  }
  std::sort(lost.begin(), lost.end());
  lost.erase(std::unique(lost.begin(), lost.end()), lost.end());
  r.blobs_lost = lost.size();
  r.packs_rewritten = doomed.size();
  std::vector<std::pair<Hash, BlobType>> keep;
  auto consider = [&](const Hash& id, const BlobLocation& loc) {
    auto it = bad_in.find(index.packs()[loc.pack]);
    if (it != bad_in.end() && !it->second.count(id)) keep.emplace_back(id, loc.type);
  };
  for (const auto& [id, loc] : index.entries()) consider(id, loc);
  for (const auto& [id, locs] : index.alternates())
    for (const auto& loc : locs) consider(id, loc);

  if (dry_run) {
    HashSet ids;
    for (const auto& k : keep) ids.insert(k.first);
    r.blobs_moved = ids.size();
    for (const auto& p : r.verify.problems)
      if (!p.point.empty()) r.lost.push_back(p);
    return r;
  }
  // Recorded first: a crash after the packs went must not leave blobs that
  // are simply missing, with nothing to say they were given up knowingly.
  if (!lost.empty()) store->AddLost(lost);
  r.blobs_moved = RepackAndDrop(store, doomed, keep);
  for (const auto& d : r.verify.damaged_packs)
    log->Info("pack " + d.pack.Hex() + ": rewritten " +
              (d.healed.empty() && d.unhealed.empty()
                   ? std::string("whole (only its table or blob headers were damaged)")
                   : "without its " + Counted(d.healed.size() + d.unhealed.size(), "bad blob") + ": " +
                         std::to_string(d.healed.size()) + " dropped (a good copy is in another pack), " +
                         std::to_string(d.unhealed.size()) + " recorded lost"));

  // What the points lose now, once: their structure walked with every blob
  // the index has taken as whole (the packs were just read in full).
  BlobIndex now = store->IndexSnapshot();
  HashSet whole;
  for (const auto& [id, loc] : now.entries()) whole.insert(id);
  VerifyReport after;
  PointChecker checker(store, whole, now, &after);
  for (const auto& point : store->ListPoints()) checker.Check(point);
  r.lost = std::move(after.lost);
  return r;
}

}  // namespace vmback
