// Local groups (the group database, /etc/group and NSS).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace vmback {

// The id of the group called name (getgrnam_r), nullopt when there is none;
// throws Error naming it when the lookup itself fails.
std::optional<gid_t> GroupId(const std::string& name);

}  // namespace vmback
