// vmback key list|add|remove|passwd|export|import: the wrapped copies of an
// encrypted store's master key (store/keys.h, docs/FORMAT.md "Encrypted
// stores").
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <iterator>

#include "cli/command.h"
#include "cli/common.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// Where a new key comes from: --new-key-file (made when not there),
// VMBACK_NEW_PASSPHRASE_FILE, or a passphrase typed twice on a terminal.
KeySources NewKeySources(const std::string& new_key_file) {
  KeySources s;
  s.key_file = new_key_file;
  if (const char* v = std::getenv("VMBACK_NEW_PASSPHRASE_FILE"); v && *v) s.passphrase_file = v;
  s.prompt = TerminalPrompt();
  return s;
}

// The encrypted store of the target, opened exclusively (or shared).
std::unique_ptr<Store> OpenEncrypted(const TargetArgs& target, LockMode mode, Logger* log,
                                     std::optional<SecretKey> master = std::nullopt, bool without_key = false) {
  Config config = ResolveConfig(target);
  if (IsInplace(config))
    ThrowConfig("keys belong to an encrypted built-in store; an in-place target is encrypted by its file system");
  StoreOptions options = StoreOptionsFor(config, target);
  options.keys.master = std::move(master);
  options.without_key = without_key;
  auto store = Store::Open(CliEnv(), config.target.path, mode, log, options);
  if (!store->encrypted()) ThrowConfig("store " + store->dir() + " is not encrypted: it has no keys");
  return store;
}

const char* KindWord(KeyKind k) { return k == KeyKind::kPassphrase ? "passphrase" : "key-file"; }

class KeyListCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override { AddTargetOptions(cmd, &target_); }
  Findings Run(CommandContext& ctx) override {
    // The labels and kinds are in config.json, unsealed: no key needed.
    auto store = OpenEncrypted(target_, LockMode::kShared, ctx.log, std::nullopt, true);
    for (const auto& w : store->Keys()) {
      ctx.out << w.label << "\t" << KindWord(w.kind);
      if (w.kind == KeyKind::kPassphrase)
        ctx.out << "\targon2id ops=" << w.kdf.ops << " memory=" << FormatBytes(w.kdf.mem_bytes);
      else
        ctx.out << "\tfile id " << w.key_file_id;
      ctx.out << "\n";
    }
    return {};
  }

 private:
  TargetArgs target_;
};

// key add, and key passwd (which replaces the key of the same label).
class KeyAddCommand : public Command {
 public:
  explicit KeyAddCommand(bool replace) : replace_(replace) {}
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    if (replace_) cmd->add_option("LABEL", label_, "the key to give a new passphrase or key file")->required();
    else cmd->add_option("--label", label_, "the new key's label (letters, digits, . _ - @ + :)")->required();
    cmd->add_option("--new-key-file", new_key_file_, "the new key is this key file (made when not there)");
    cmd->add_option("--kdf-memory", kdf_memory_text_, "Argon2id memory for a passphrase (default 64M)");
    cmd->add_option("--kdf-ops", kdf_ops_, "Argon2id passes for a passphrase (default 3)");
    cmd->footer("\nThe store is opened with a key it has (--key-file, VMBACK_PASSPHRASE_FILE,\n"
                "credentials, or a prompt); the new key is --new-key-file, the passphrase in\n"
                "VMBACK_NEW_PASSPHRASE_FILE, or one typed twice on a terminal.");
  }
  Findings Run(CommandContext& ctx) override {
    uint64_t mem = 0;
    if (!ParseSize(kdf_memory_text_, &mem) || !KdfParamsValid({kdf_ops_, mem}))
      ThrowConfig("--kdf-memory / --kdf-ops out of bounds (8K to 4G; 1 to 64)");
    auto store = OpenEncrypted(target_, LockMode::kExclusive, ctx.log);
    std::vector<WrappedKey> keys = store->Keys();
    auto it = std::find_if(keys.begin(), keys.end(), [&](const WrappedKey& w) { return w.label == label_; });
    if (replace_ && it == keys.end()) ThrowConfig("store " + store->dir() + " has no key '" + label_ + "'");
    if (!replace_ && it != keys.end()) ThrowConfig("store " + store->dir() + " has a key '" + label_ + "' already");
    WrappedKey w = WrapFromSources(Env::Default(), NewKeySources(new_key_file_), store->master_key(),
                                   store->store_id(), label_, {kdf_ops_, mem});
    if (replace_) *it = w;
    else keys.push_back(w);
    store->SetKeys(keys);
    ctx.out << (replace_ ? "replaced" : "added") << " key '" << label_ << "' (" << KindWord(w.kind) << ")\n";
    return {};
  }

 private:
  bool replace_;
  TargetArgs target_;
  std::string label_, new_key_file_, kdf_memory_text_ = "64M";
  uint64_t kdf_ops_ = KdfParams{}.ops;
};

class KeyRemoveCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("LABEL", label_, "the key to remove")->required();
  }
  Findings Run(CommandContext& ctx) override {
    auto store = OpenEncrypted(target_, LockMode::kExclusive, ctx.log);
    std::vector<WrappedKey> keys = store->Keys();
    auto it = std::find_if(keys.begin(), keys.end(), [&](const WrappedKey& w) { return w.label == label_; });
    if (it == keys.end()) ThrowConfig("store " + store->dir() + " has no key '" + label_ + "'");
    if (keys.size() == 1)
      ThrowConfig("'" + label_ + "' is the store's last key: add another first (or keep a paper key: "
                  "vmback key export --paper)");
    keys.erase(it);
    store->SetKeys(keys);
    ctx.out << "removed key '" << label_ << "'\n";
    return {};
  }

 private:
  TargetArgs target_;
  std::string label_;
};

class KeyExportCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--paper", paper_, "a printable recovery form of the master key (the only form)")->required();
    cmd->footer("\nWhoever holds the printout can read every backup: keep it like the disks' keys.\n"
                "'vmback key import' reads it back.");
  }
  Findings Run(CommandContext& ctx) override {
    auto store = OpenEncrypted(target_, LockMode::kShared, ctx.log);
    std::string form = FormatPaperKey(store->master_key(), store->store_id());
    WipeOnExit wipe(&form);
    ctx.out << form;
    return {};
  }

 private:
  TargetArgs target_;
  bool paper_ = false;
};

class KeyImportCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("FILE", file_, "the paper key as typed back ('-': standard input)")->required();
    cmd->add_option("--label", label_, "label of the new key (default recovered)");
    cmd->add_option("--new-key-file", new_key_file_, "the new key is this key file (made when not there)");
    cmd->footer("\nOpens the store with the master key of a paper key (vmback key export --paper)\n"
                "and adds a new key: --new-key-file, VMBACK_NEW_PASSPHRASE_FILE, or a passphrase\n"
                "typed twice.");
  }
  Findings Run(CommandContext& ctx) override {
    std::string text;
    WipeOnExit wipe(&text);
    if (file_ == "-") {
      // Bounded as a file is: a paper key is a few lines.
      text.reserve(kMaxKeyFileBytes + 1);
      for (std::istreambuf_iterator<char> in(std::cin), end; in != end && text.size() <= kMaxKeyFileBytes; ++in)
        text.push_back(*in);
      if (text.size() > kMaxKeyFileBytes)
        ThrowConfig("the paper key on standard input is longer than " + std::to_string(kMaxKeyFileBytes) +
                    " bytes: not a paper key");
    } else {
      text = ReadFileToString(Env::Default(), file_, kMaxKeyFileBytes);
    }
    std::string paper_store;
    SecretKey master = ParsePaperKey(text, &paper_store);
    auto store = OpenEncrypted(target_, LockMode::kExclusive, ctx.log, master);
    if (!paper_store.empty() && paper_store != store->store_id())
      ThrowConfig("the paper key is for store " + paper_store + ", not " + store->store_id());
    std::vector<WrappedKey> keys = store->Keys();
    std::erase_if(keys, [&](const WrappedKey& w) { return w.label == label_; });
    keys.push_back(WrapFromSources(Env::Default(), NewKeySources(new_key_file_), master, store->store_id(), label_,
                                   KdfParams{}));
    store->SetKeys(keys);
    ctx.out << "imported the paper key as key '" << label_ << "'\n";
    return {};
  }

 private:
  TargetArgs target_;
  std::string file_, label_ = "recovered", new_key_file_;
};

}  // namespace

std::unique_ptr<Command> NewKeyListCommand() { return std::make_unique<KeyListCommand>(); }
std::unique_ptr<Command> NewKeyAddCommand() { return std::make_unique<KeyAddCommand>(false); }
std::unique_ptr<Command> NewKeyPasswdCommand() { return std::make_unique<KeyAddCommand>(true); }
std::unique_ptr<Command> NewKeyRemoveCommand() { return std::make_unique<KeyRemoveCommand>(); }
std::unique_ptr<Command> NewKeyExportCommand() { return std::make_unique<KeyExportCommand>(); }
std::unique_ptr<Command> NewKeyImportCommand() { return std::make_unique<KeyImportCommand>(); }

}  // namespace vmback
