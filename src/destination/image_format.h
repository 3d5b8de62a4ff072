// `vmback restore --format`: an image restored as raw bytes (what the point
// holds: the guest-visible content of a disk) or converted to qcow2 with
// qemu-img. The conversion sits above Destination::Restore, so the store and
// the in-place targets give the same result.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "destination/destination.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

enum class ImageFormat { kRaw, kQcow2 };

// "raw" or "qcow2"; anything else throws Error(kConfig) naming it.
ImageFormat ParseImageFormat(const std::string& text);

// qemu-img convert is given this long, plus one second per
// kConvertBytesPerSecond of the image's data: only a hang reaches it.
constexpr std::chrono::minutes kConvertBaseTimeout{10};
constexpr uint64_t kConvertBytesPerSecond = uint64_t{32} << 20;

// Restores path of point from dest to `to` in format. kRaw is
// dest->Restore as it is. kQcow2 takes one image file (RestoreOptions::
// one_file: a whole point or a directory is refused before anything is
// written) and never a block device (refused, naming it):
//   - the raw image is restored into a new private directory (0700) beside
//     `to`, named "<to>.tmp-<random>", so no one else can read it (stopped
//     when *cancel is set, RestoreOptions::cancel);
//   - `qemu-img convert -f raw -O qcow2` writes it to a file created there
//     first (O_EXCL, 0600), with a deadline (kConvertBaseTimeout and the
//     size), ended at once when *cancel is set (may be null);
//   - the qcow2 gets the restored file's owner, mode, mtime and xattrs and
//     is renamed to `to` only when the conversion succeeded (over an
//     existing file only with Overwrite::kAllow; else it is hard-linked
//     there, which never replaces a file that appeared since the check);
//   - the private directory and the raw image in it are removed on every
//     path.
// Throws as Restore does, and Error naming qemu-img and its stderr when the
// conversion fails.
RestoreStats RestoreInFormat(Destination* dest, Env* env, ImageFormat format, const std::string& point,
                             const std::string& path, const std::string& to, RestoreOptions options,
                             const std::atomic<bool>* cancel, Logger* log);

// Converts the raw image at raw to a qcow2 image at out (which the caller
// created, empty), within the deadline above for data_bytes of data.
// Throws Error naming the command and its stderr when it fails.
void ConvertRawToQcow2(Env* env, const std::string& raw, const std::string& out, uint64_t data_bytes,
                       const std::atomic<bool>* cancel);

}  // namespace vmback
