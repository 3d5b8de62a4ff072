// The snapshot a volume with track_changes keeps from its last committed
// point: the base against which the next run's snapshot is compared
// (source/shared_extents.h), so that only the extents the guests wrote since
// are read. Recorded in STATE_DIR/base-VOLUME.json.
//
// The base is trusted only with evidence: its record (read as hostile: a
// bounded JSON file naming a snapshot of this very volume, source and kind,
// in the form vmback gives its snapshots) and the snapshot itself there;
// the point it was read into is the point the backup builds on
// (VolumeSpec::changes_since, checked by the destination). Anything else is
// a full read, with the reason in the report.
//
// Handing over to a new base, crash-safe and leaving nothing behind: the
// new record names the new snapshot and the previous one ("previous"); the
// journal then marks the new snapshot kept; the previous one is dropped; the
// record is written again without it. A previous snapshot still recorded is
// dropped by the next LoadBase.
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "destination/backup_types.h"
#include "os/env.h"
#include "source/snapshot.h"
#include "util/log.h"

namespace vmback {

struct BaseSnapshot {
  SnapshotSpec spec;  // as it was taken (its run id)
  std::string path;   // where its copy of the source is read
  std::string point;  // the point it was read into
};

// Whether volume v keeps its snapshot as the next run's base.
bool KeepsBase(const VolumeConfig& v);

// The base of volume v, when its record is valid and the snapshot is there;
// otherwise nothing, and *why says why (empty: no base was ever kept). A
// "previous" snapshot the record still names is dropped first.
std::optional<BaseSnapshot> LoadBase(Env* env, const Config& config, const VolumeConfig& v, Logger* log,
                                     std::string* why);

// Gives spec (volume v, read from its snapshot) its change list: the extents
// no longer shared with the base (LoadBase), relative to the base's point;
// with no base, a full read and why. *base: the base used.
void UseBase(Env* env, const Config& config, const VolumeConfig& v, VolumeSpec* spec,
             std::optional<BaseSnapshot>* base, Logger* log);

// Writes the record naming the new base of v (the snapshot taken with
// spec, read at path, for the committed point) and the previous base, to
// drop: the first step, before the journal marks the new snapshot kept.
void RecordBase(Env* env, const Config& config, const VolumeConfig& v, const BaseSnapshot& base,
                const std::optional<BaseSnapshot>& previous);

// The last steps, after the journal marked the new base kept: the previous
// base is dropped (a failure is a warning: the next LoadBase tries again)
// and the record written without it.
void FinishHandOver(Env* env, const Config& config, const VolumeConfig& v, const BaseSnapshot& base,
                    const std::optional<BaseSnapshot>& previous, Logger* log);

}  // namespace vmback
