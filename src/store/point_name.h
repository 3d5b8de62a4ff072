// Point names and tags: what names a point of the store (its manifest's
// file name and "name") and labels it ("tags"), and how names are ordered.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace vmback {

// Orders point names by time: "T" < "T.2" < "T.10" < "T2".
bool PointNameLess(const std::string& a, const std::string& b);

// A point's tag (`backup --tag`, the manifest's "tags"): 1 to 64 bytes of
// letters, digits and . _ + : @ = -, not starting with '-'.
bool IsValidTag(std::string_view tag);

// The name of a point, as recorded in its manifest: what Store::NewPointName
// makes (YYYY-MM-DDTHHMMSSZ, then .2, .3, ...) or any other name of 1 to 128
// bytes of letters, digits and . _ + : @ = -, starting with neither '.' nor
// '-'; so it is always one safe file name component. Empty: not recorded.
class PointName {
 public:
  PointName() = default;
  // Throws kCorrupt naming `where` unless IsValid(name).
  static PointName Parse(std::string_view name, const std::string& where);
  static bool IsValid(std::string_view name);

  const std::string& str() const { return name_; }
  bool empty() const { return name_.empty(); }
  friend bool operator==(const PointName& a, const PointName& b) { return a.name_ == b.name_; }
  friend bool operator!=(const PointName& a, const PointName& b) { return a.name_ != b.name_; }
  friend bool operator<(const PointName& a, const PointName& b) { return PointNameLess(a.name_, b.name_); }

 private:
  explicit PointName(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

}  // namespace vmback
