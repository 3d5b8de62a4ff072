// Fuzzes the domain XML reader (hypervisor/hypervisor.h): DiskSourcesFromDomainXml,
// which reads what virDomainGetXMLDesc returns. Input: the text of a domain XML.
//
// Its contract: XML it refuses (over 10 MiB, a DOCTYPE, not well-formed)
// raises Error(kOther) naming the VM; what it accepts gives non-empty UTF-8
// paths, each one an attribute value of the input (so none can hold a byte
// the input did not have; nothing was fetched or expanded).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "hypervisor/hypervisor.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

constexpr char kVm[] = "fuzz-vm";

void CheckDomainXml(std::string_view text) {
  const std::string xml(text);
  std::vector<std::string> sources;
  try {
    sources = DiskSourcesFromDomainXml(xml, kVm);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kOther) {
      Fail(std::string("unexpected kind of vmback::Error: ") + e.what());
    }
    Check(std::string(e.what()).rfind(std::string("VM '") + kVm + "': domain XML", 0) == 0,
          "a refusal names the VM");
    return;
  } catch (const std::exception& e) {
    Fail(std::string("an exception other than vmback::Error escaped: ") + e.what());
  }
  Check(xml.size() <= (10u << 20), "XML over 10 MiB is refused");
  for (const std::string& s : sources) {
    Check(!s.empty(), "a disk source is not empty");
    Check(s.find('\0') == std::string::npos, "a disk source holds no NUL");
    Check(IsValidUtf8(s), "a disk source is UTF-8");
    Check(s.size() <= xml.size(), "a disk source is no longer than the XML");
  }
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmback::fuzz::CheckDomainXml(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
