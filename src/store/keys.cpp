#include "store/keys.h"

#include <cstdlib>

#include "os/terminal.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

const char* Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// Drops one trailing newline (or CR LF) of a passphrase file's content.
void DropNewline(std::string* text) {
  if (!text->empty() && text->back() == '\n') text->pop_back();
  if (!text->empty() && text->back() == '\r') text->pop_back();
}

// Reads a key file or passphrase file into *out; false (with why in
// *tried) when it is absent, unreadable or malformed. What was read is
// wiped once parsed.
bool ReadSecretFile(Env* env, const std::string& path, KeyKind kind, const std::string& source,
                    std::vector<std::string>* tried, KeySecret* out) {
  out->kind = kind;
  out->source = source;
  try {
    if (!env->Exists(path)) {
      tried->push_back(source + ": not there");
      return false;
    }
    if (kind == KeyKind::kKeyFile) {
      std::string text = ReadFileToString(env, path, kMaxKeyFileBytes);
      WipeOnExit wipe(&text);
      out->file_key = ParseKeyFile(text, path);
    } else {
      out->passphrase = ReadFileToString(env, path, kMaxPassphraseBytes + 2);  // moved: no copy
      DropNewline(&out->passphrase);
      if (out->passphrase.empty() || out->passphrase.size() > kMaxPassphraseBytes) {
        tried->push_back(source + ": empty or longer than " + std::to_string(kMaxPassphraseBytes) + " bytes");
        return false;
      }
    }
    return true;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCrash) throw;
    tried->push_back(source + ": " + e.what());
    return false;
  }
}

std::optional<SecretKey> TryOpen(const KeySecret& s, const std::vector<WrappedKey>& keys, const std::string& store_id) {
  for (const auto& w : keys) {
    if (w.kind != s.kind) continue;
    std::optional<SecretKey> m;
    if (s.kind == KeyKind::kKeyFile) {
      if (w.key_file_id != KeyFileId(s.file_key)) continue;
      m = UnwrapWithKeyFile(w, store_id, s.file_key);
    } else {
      m = UnwrapWithPassphrase(w, store_id, s.passphrase);
    }
    if (m) return m;
  }
  return std::nullopt;
}

}  // namespace

KeySources KeySources::FromEnvironment(const std::string& key_file) {
  KeySources s;
  s.key_file = key_file;
  if (const char* v = Getenv("VMBACK_PASSPHRASE_FILE")) s.passphrase_file = v;
  if (const char* v = Getenv("CREDENTIALS_DIRECTORY")) s.credentials_dir = v;
  s.prompt = TerminalPrompt();
  return s;
}

std::function<std::string(const std::string& prompt)> TerminalPrompt() {
  if (!StdinIsTerminal()) return nullptr;
  return [](const std::string& prompt) {
    std::string line;
    ReadSecretLine(prompt, kMaxPassphraseBytes, &line);
    return line;
  };
}

std::vector<KeySecret> ReadKeySecrets(Env* env, const KeySources& sources, std::vector<std::string>* tried,
                                      bool include_prompt) {
  std::vector<KeySecret> out;
  out.reserve(5);  // each source at most once: the secrets are never copied by a growth
  auto read = [&](const std::string& path, KeyKind kind, const std::string& source) {
    out.emplace_back();
    if (!ReadSecretFile(env, path, kind, source, tried, &out.back())) out.pop_back();
  };
  if (!sources.key_file.empty()) read(sources.key_file, KeyKind::kKeyFile, "--key-file " + sources.key_file);
  if (!sources.passphrase_file.empty())
    read(sources.passphrase_file, KeyKind::kPassphrase, "VMBACK_PASSPHRASE_FILE " + sources.passphrase_file);
  if (!sources.credentials_dir.empty()) {
    const std::string key = JoinPath(sources.credentials_dir, "vmback.key");
    const std::string pass = JoinPath(sources.credentials_dir, "vmback.passphrase");
    read(key, KeyKind::kKeyFile, "credential " + key);
    read(pass, KeyKind::kPassphrase, "credential " + pass);
  }
  if (include_prompt && sources.prompt) {
    KeySecret& s = out.emplace_back();
    s.kind = KeyKind::kPassphrase;
    s.source = "the passphrase typed";
    s.passphrase = sources.prompt("Passphrase: ");
    if (s.passphrase.empty()) {
      tried->push_back("the terminal: no passphrase typed");
      out.pop_back();
    }
  }
  return out;
}

std::string KeyCheck(const SecretKey& master) {
  static constexpr char kLabel[] = "vmback key check v1";
  Hash h = HmacSha256(master.bytes.data(), master.bytes.size(), kLabel, sizeof kLabel - 1);
  return HexEncode(h.bytes.data(), 8);
}

SecretKey UnlockMasterKey(Env* env, const KeySources& sources, const StoreEncryption& enc,
                          const std::string& store_id, const std::string& store_dir) {
  const std::vector<WrappedKey>& keys = enc.keys;
  std::vector<std::string> tried;
  if (sources.master) {
    if (KeyCheck(*sources.master) == enc.key_check) return *sources.master;
    tried.push_back("the master key given (paper key): not this store's (its check does not match)");
  }
  // Files first; the prompt only when none of them opens a key.
  for (int pass = 0; pass < 2; pass++) {
    KeySources these;
    if (pass == 0) {
      these = sources;
      these.prompt = nullptr;
    } else {
      these.prompt = sources.prompt;
    }
    for (const auto& s : ReadKeySecrets(env, these, &tried, pass == 1)) {
      if (auto m = TryOpen(s, keys, store_id)) return *m;
      tried.push_back(s.source + ": opens none of the store's " + std::to_string(keys.size()) + " keys" +
                      (s.kind == KeyKind::kPassphrase ? " (wrong passphrase?)" : ""));
    }
  }
  std::string what;
  for (const auto& t : tried) what += (what.empty() ? " " : "; ") + t;
  if (tried.empty())
    what = " none given: use --key-file FILE, VMBACK_PASSPHRASE_FILE, a systemd credential "
           "(LoadCredential=vmback.key or vmback.passphrase) or run it on a terminal";
  ThrowConfig("store " + store_dir + " is encrypted and no key opens it; sources tried:" + what);
}

WrappedKey WrapFromSources(Env* env, const KeySources& sources, const SecretKey& master, const std::string& store_id,
                           const std::string& label, const KdfParams& kdf) {
  if (!sources.key_file.empty() && !env->Exists(sources.key_file)) {
    // A new key file: written exclusively, private to root.
    SecretKey file_key = SecretKey::Random();
    auto f = env->OpenWrite(sources.key_file, CreateMode::kExclusive, 0600);
    std::string text = FormatKeyFile(file_key);
    f->Append(text.data(), text.size());
    f->Sync();
    f->Close();
    return WrapWithKeyFile(master, store_id, file_key, label);
  }
  std::vector<std::string> tried;
  KeySources files = sources;
  files.prompt = nullptr;
  std::vector<KeySecret> secrets = ReadKeySecrets(env, files, &tried, false);
  if (!secrets.empty()) {
    const KeySecret& s = secrets.front();
    if (s.kind == KeyKind::kKeyFile) return WrapWithKeyFile(master, store_id, s.file_key, label);
    return WrapWithPassphrase(master, store_id, s.passphrase, kdf, label);
  }
  if (sources.prompt) {
    std::string a = sources.prompt("New passphrase: ");
    WipeOnExit wipe_a(&a);
    if (!a.empty()) {
      std::string b = sources.prompt("The same again: ");
      WipeOnExit wipe_b(&b);
      if (a != b) ThrowConfig("the two passphrases differ; nothing changed");
      return WrapWithPassphrase(master, store_id, a, kdf, label);
    }
  }
  std::string what;
  for (const auto& t : tried) what += "; " + t;
  ThrowConfig("no key for the encrypted store: give --key-file FILE (made when not there), "
              "VMBACK_PASSPHRASE_FILE, a systemd credential, or run it on a terminal" + what);
}

nlohmann::json EncryptionToJson(const StoreEncryption& e) {
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& w : e.keys) keys.push_back(WrappedKeyToJson(w));
  return {{"cipher", "aes-256-gcm-hmac-subkey"}, {"ids", "hmac-sha256"}, {"key_check", e.key_check}, {"keys", keys}};
}

StoreEncryption EncryptionFromJson(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || j.value("cipher", "") != "aes-256-gcm-hmac-subkey" || j.value("ids", "") != "hmac-sha256")
    ThrowCorrupt(where + ": 'encryption' names no cipher this vmback knows");
  auto it = j.find("keys");
  // No key at all is a store only a paper key opens (key import).
  if (it == j.end() || !it->is_array() || it->size() > kMaxWrappedKeys)
    ThrowCorrupt(where + ": 'encryption' has no list of at most " + std::to_string(kMaxWrappedKeys) + " keys");
  StoreEncryption e;
  e.key_check = j.value("key_check", "");
  std::string raw;
  if (e.key_check.size() != 16 || !HexDecode(e.key_check, &raw))
    ThrowCorrupt(where + ": 'encryption' has no key_check of 16 hex digits");
  for (const auto& k : *it) {
    e.keys.push_back(WrappedKeyFromJson(k, where));
    for (size_t i = 0; i + 1 < e.keys.size(); i++)
      if (e.keys[i].label == e.keys.back().label) ThrowCorrupt(where + ": key label '" + e.keys[i].label + "' repeats");
  }
  return e;
}

}  // namespace vmback
