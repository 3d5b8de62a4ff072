#include "destination/destination.h"

#include "util/error.h"

namespace vmback {

void CheckTags(const Destination& d, const std::vector<std::string>& tags) {
  if (!tags.empty() && !d.TakesTags())
    ThrowConfig("--tag: an in-place target's points are file system snapshots and carry no tags; "
                "tags are for a store (--store or [target] type = \"store\")");
}

}  // namespace vmback
