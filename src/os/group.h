// Local users and groups (the user and group databases, and NSS).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>

namespace vmback {

// The id of the group called name (getgrnam_r), nullopt when there is none;
// throws Error naming it when the lookup itself fails.
std::optional<gid_t> GroupId(const std::string& name);
// The ids of the user called name and of its primary group (getpwnam_r),
// nullopt when there is none; throws like GroupId.
std::optional<std::pair<uid_t, gid_t>> UserIds(const std::string& name);

}  // namespace vmback
