// Where the key of an encrypted store comes from, and the wrapped copies of
// its master key in config.json (docs/FORMAT.md, "Encrypted stores").
//
// A passphrase is never taken from the command line or the configuration
// file (both are seen by others: ps, backups of /etc). The sources, in the
// order they are tried:
//   1. --key-file FILE: a key file (crypto/key_wrap.h, FormatKeyFile);
//   2. $VMBACK_PASSPHRASE_FILE: a file holding the passphrase (one trailing
//      newline is not part of it);
//   3. $CREDENTIALS_DIRECTORY (systemd LoadCredential=): "vmback.key", a key
//      file, or "vmback.passphrase";
//   4. a prompt on the terminal, only when standard input is one.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "crypto/key_wrap.h"
#include "os/env.h"
#include "util/wipe.h"

namespace vmback {

struct KeySources {
  std::string key_file;
  std::string passphrase_file;
  std::string credentials_dir;
  // Asks for a secret (echo off) and returns it; empty when no person is
  // there. Null: never ask.
  std::function<std::string(const std::string& prompt)> prompt;
  // The master key itself (`vmback key import` of a paper key): tried
  // first, accepted only when it matches the store's key check.
  std::optional<SecretKey> master;
  // The sources of this process: key_file as given (--key-file), the
  // environment's VMBACK_PASSPHRASE_FILE and CREDENTIALS_DIRECTORY, and the
  // terminal prompt when standard input is a terminal.
  static KeySources FromEnvironment(const std::string& key_file);
};

// A prompt on the terminal (echo off) when standard input is one; else null.
std::function<std::string(const std::string& prompt)> TerminalPrompt();

// A passphrase or key file found in a source. The passphrase is wiped when
// it goes (util/wipe.h), as SecretKey wipes itself.
struct KeySecret {
  KeyKind kind = KeyKind::kPassphrase;
  std::string passphrase;  // kPassphrase
  SecretKey file_key;      // kKeyFile
  std::string source;      // for messages: "--key-file /root/k", "VMBACK_PASSPHRASE_FILE /run/x"
  KeySecret() = default;
  KeySecret(const KeySecret&) = default;
  KeySecret& operator=(const KeySecret&) = delete;
  ~KeySecret() { WipeString(&passphrase); }
};

// Every secret the sources give, in order (a prompt is asked once, last,
// only if nothing before it opened anything: see UnlockMasterKey). A
// source that is named but unreadable or malformed is described in *tried
// and skipped. Files are read capped (kMaxKeyFileBytes, kMaxPassphraseBytes).
std::vector<KeySecret> ReadKeySecrets(Env* env, const KeySources& sources, std::vector<std::string>* tried,
                                      bool include_prompt);

// The master key of the store at store_dir from the first source whose
// secret opens one of `keys`. Throws kConfig (exit 2) naming the store and
// every source tried and what became of it when none does.
struct StoreEncryption;
SecretKey UnlockMasterKey(Env* env, const KeySources& sources, const StoreEncryption& enc,
                          const std::string& store_id, const std::string& store_dir);

// A new wrapped copy of master from the first secret the sources give
// (store init --encrypt, key add): a key file (created with a new random key
// when --key-file names a file that is not there), a passphrase file, a
// credential, or a passphrase asked twice on the terminal. Throws kConfig
// when no source gives one.
WrappedKey WrapFromSources(Env* env, const KeySources& sources, const SecretKey& master, const std::string& store_id,
                           const std::string& label, const KdfParams& kdf);

// The "encryption" object of config.json and back; FromJson throws
// kCorrupt naming `where`.
struct StoreEncryption {
  std::vector<WrappedKey> keys;
  // 16 hex digits: HMAC-SHA256(master, "vmback key check v1"), first 8
  // bytes. Tells a master key typed from paper right from wrong; says
  // nothing of the key.
  std::string key_check;
};
std::string KeyCheck(const SecretKey& master);
nlohmann::json EncryptionToJson(const StoreEncryption& e);
StoreEncryption EncryptionFromJson(const nlohmann::json& j, const std::string& where);
inline constexpr size_t kMaxWrappedKeys = 64;

}  // namespace vmback
