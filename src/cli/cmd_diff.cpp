// vmback diff: what changed between two points, without restoring anything.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"
#include "util/encoding.h"

namespace vmback {

namespace {

std::string Octal(uint32_t mode) {
  char s[16];
  std::snprintf(s, sizeof s, "%04o", mode);
  return s;
}

std::string Plural(uint64_t n, const char* one) { return std::to_string(n) + " " + one + (n == 1 ? "" : "s"); }

// "(6 bytes)", "(dir)", "(symlink -> t)".
std::string Described(const PointEntry& e) {
  if (e.type == "file") return "(" + Plural(e.size, "byte") + ")";
  if (e.type == "symlink") return "(symlink -> " + EscapeForTerminal(e.target) + ")";
  return "(" + e.type + ")";
}

// "content, 131072 bytes in 2 blocks of 65536; mode 0644 -> 0600".
std::string WhatChanged(const EntryChange& c) {
  const PointEntry &a = *c.before, &b = *c.after;
  std::string out;
  for (const std::string& w : c.what) {
    if (!out.empty()) out += "; ";
    if (w == "type") {
      out += "type " + a.type + " -> " + b.type;
      if (b.type == "symlink") out += " (-> " + EscapeForTerminal(b.target) + ")";
    } else if (w == "content") {
      out += "content, ";
      out += c.content->known ? Plural(c.content->bytes(), "byte") + " in " + Plural(c.content->blocks, "block") +
                                    " of " + std::to_string(c.content->block_size)
                              : "bytes changed not known (no blockmap)";
      if (a.size != b.size) out += " (size " + std::to_string(a.size) + " -> " + std::to_string(b.size) + ")";
    } else if (w == "mode") {
      out += "mode " + Octal(a.mode) + " -> " + Octal(b.mode);
    } else if (w == "owner") {
      out += "owner " + std::to_string(a.uid) + ":" + std::to_string(a.gid) + " -> " + std::to_string(b.uid) + ":" +
             std::to_string(b.gid);
    } else if (w == "mtime") {
      out += "mtime " + FormatTimeUtc(a.mtime_ns) + " -> " + FormatTimeUtc(b.mtime_ns);
    } else if (w == "target") {
      out += "target " + EscapeForTerminal(a.target) + " -> " + EscapeForTerminal(b.target);
    }
  }
  return out;
}

class DiffCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT1", from_, std::string("the earlier point: ") + kPointHelp)->required();
    cmd->add_option("POINT2", to_, "the later point (as POINT1)")->required();
    cmd->add_option("PATH", path_, "VOLUME or VOLUME/dir inside it (default: the whole points)");
    cmd->add_flag("--json", json_,
                  "the changes as a JSON list (change, path, type, size; for a change: changes, before, "
                  "after, changed_blocks, block_size, changed_bytes)");
    cmd->footer("\nWhat changed from POINT1 to POINT2 below PATH, in path order, one line each:\n"
                "  + PATH (size)        added\n"
                "  - PATH (size)        removed\n"
                "  M PATH: WHAT         changed: type, content, mode, owner (uid:gid), mtime,\n"
                "                       a link's target\n"
                "then a summary line. A changed file's content is given as the blocks that\n"
                "differ times the block size, found from the points' block lists (a store)\n"
                "or blockmaps (an in-place target) without reading any data; where an\n"
                "in-place point lacks a blockmap, the bytes are not known (and a file of\n"
                "the same size and mtime counts as unchanged). A dir target has one point.\n\n"
                "Examples:\n  vmback diff -c /etc/vmback/vmback.toml 2026-11-30T020000Z latest\n"
                "  vmback diff --store /mnt/usb/vmback P1 P2 root/etc\n"
                "  vmback diff --btrfs /mnt/usb/vmback P1 P2 images --json");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    std::string path = PointPath(path_);
    while (!path.empty() && path.back() == '/') path.pop_back();
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    const PointDiff d = dest->Diff(ResolvePointName(dest.get(), from_), ResolvePointName(dest.get(), to_), path);
    if (json_) {
      ctx.out << PointDiffToJson(d).dump(2) << "\n";
      return {};
    }
    uint64_t added = 0, removed = 0, changed = 0, bytes = 0, unknown = 0;
    for (const EntryChange& c : d.changes) {
      const PointEntry& e = c.entry();
      const std::string shown = EscapeForTerminal(e.path) + (e.type == "dir" ? "/" : "");
      switch (c.kind) {
        case EntryChange::Kind::kAdded:
          added++;
          ctx.out << "+ " << shown << " " << Described(e) << "\n";
          break;
        case EntryChange::Kind::kRemoved:
          removed++;
          ctx.out << "- " << shown << " " << Described(e) << "\n";
          break;
        case EntryChange::Kind::kChanged:
          changed++;
          if (c.content && c.content->known) bytes += c.content->bytes();
          if (c.content && !c.content->known) unknown++;
          ctx.out << "M " << shown << ": " << WhatChanged(c) << "\n";
          break;
      }
    }
    if (d.changes.empty()) {
      ctx.out << "no changes\n";
      return {};
    }
    ctx.out << added << " added, " << removed << " removed, " << changed << " changed; "
            << Plural(bytes, "byte") << " of content changed";
    if (unknown) ctx.out << ", and " << Plural(unknown, "file") << " by bytes not known";
    ctx.out << "\n";
    return {};
  }

 private:
  TargetArgs target_;
  std::string from_, to_, path_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewDiffCommand() { return std::make_unique<DiffCommand>(); }

}  // namespace vmback
