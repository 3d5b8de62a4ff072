// The domain XML libvirt gives for a VM, read with libxml2 and XPath: only
// the sources of its disks. The XML is untrusted (a guest's definition may
// have been written by anyone with access to libvirt): its size is bounded,
// a DOCTYPE is refused before any declaration is read, no entity is
// expanded, nothing is fetched from the network.
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hypervisor/hypervisor.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/vm_record.h"

namespace vmback {
namespace {

// libvirt writes a domain's XML itself, but what it holds (paths, names,
// metadata) came from whoever defined the domain. virsh reads at most 10 MiB
// of XML from a file, and so does this.
constexpr size_t kMaxDomainXmlBytes = 10 << 20;

// No network, no DTD (none is loaded, and entities are never substituted:
// XML_PARSE_NOENT is off), libxml2's default depth and length limits
// (XML_PARSE_HUGE is off), and errors collected rather than printed.
constexpr int kXmlParseOptions = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

// The domain's own disks that are not cdroms, and of each its own source (not
// those of a <backingStore> or <mirror> inside it).
constexpr char kDiskSourceXPath[] = "/domain/devices/disk[not(@device='cdrom')]/source[1]";

template <typename T, void (*kFree)(T*)>
struct XmlFree {
  void operator()(T* p) const { kFree(p); }
};
using XmlParserHandle =
    std::unique_ptr<xmlParserCtxt, XmlFree<xmlParserCtxt, xmlFreeParserCtxt>>;
using XmlDocHandle = std::unique_ptr<xmlDoc, XmlFree<xmlDoc, xmlFreeDoc>>;
using XPathContextHandle =
    std::unique_ptr<xmlXPathContext, XmlFree<xmlXPathContext, xmlXPathFreeContext>>;
using XPathObjectHandle =
    std::unique_ptr<xmlXPathObject, XmlFree<xmlXPathObject, xmlXPathFreeObject>>;

// libxml2 wants xmlInitParser before threads use it (libvirt calls it too;
// a second call does nothing).
void InitXml() {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
}

// The SAX callback for <!DOCTYPE ...>: stops the parser before it reads any
// declaration, so no entity (internal, external or parameter) is ever
// defined, expanded or fetched. A DOCTYPE is refused: libvirt writes none.
void StopAtDoctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* parser = static_cast<xmlParserCtxtPtr>(ctx);
  *static_cast<bool*>(parser->_private) = true;
  xmlStopParser(parser);
}

// what: "VM 'x': domain XML" or "domain XML", to begin error messages with.
XmlDocHandle ParseDomainXml(const std::string& xml, const std::string& what) {
  if (xml.size() > kMaxDomainXmlBytes) {
    throw Error(ErrorKind::kOther, what + " is " + std::to_string(xml.size()) +
                                       " bytes, more than the " +
                                       std::to_string(kMaxDomainXmlBytes >> 20) +
                                       " MiB allowed; refused");
  }
  InitXml();
  XmlParserHandle parser(xmlNewParserCtxt());
  if (parser == nullptr) throw Error(ErrorKind::kOther, what + ": cannot make an XML parser");
  bool doctype = false;
  parser->_private = &doctype;
  parser->sax->internalSubset = StopAtDoctype;
  // Always UTF-8, as libvirt returns it, whatever the XML declaration says.
  XmlDocHandle doc(xmlCtxtReadMemory(parser.get(), xml.data(), static_cast<int>(xml.size()),
                                     "domain.xml", "UTF-8", kXmlParseOptions));
  if (doctype) {
    throw Error(ErrorKind::kOther, what +
                                       " has a DOCTYPE (libvirt writes none); refused without "
                                       "reading its declarations");
  }
  if (doc == nullptr || !parser->wellFormed) {
    const xmlError* e = xmlCtxtGetLastError(parser.get());
    std::string reason = e != nullptr && e->message != nullptr ? e->message : "unknown error";
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
    if (reason.size() > 200) reason = reason.substr(0, 200) + "...";
    throw Error(ErrorKind::kOther, what + " is not well-formed (line " +
                                       std::to_string(e != nullptr ? e->line : 0) + ": " +
                                       EscapeForTerminal(reason) + ")");
  }
  return doc;
}

struct XmlStringFree {
  void operator()(xmlChar* s) const { xmlFree(s); }  // xmlFree is a variable, not a function
};

// The value of attribute name (in no namespace) of node; "" if absent.
std::string Attribute(xmlNodePtr node, const char* name) {
  std::unique_ptr<xmlChar, XmlStringFree> value(
      xmlGetNoNsProp(node, reinterpret_cast<const xmlChar*>(name)));
  return value == nullptr ? "" : reinterpret_cast<const char*>(value.get());
}

}  // namespace

namespace {

// A target ("vda") or driver type ("qcow2") as libvirt writes them; anything
// else is not used.
std::string ShortName(const std::string& text) {
  if (text.empty() || text.size() > 32) return "";
  for (char c : text)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return "";
  return text;
}

// The first child element of node named name, or null.
xmlNodePtr Child(xmlNodePtr node, const char* name) {
  for (xmlNodePtr c = node->children; c != nullptr; c = c->next)
    if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(name))) return c;
  return nullptr;
}

}  // namespace

std::vector<DomainDisk> DisksFromDomainXml(const std::string& xml, const std::string& vm_name) {
  const std::string what = vm_name.empty() ? "domain XML" : "VM '" + vm_name + "': domain XML";
  XmlDocHandle doc = ParseDomainXml(xml, what);
  XPathContextHandle context(xmlXPathNewContext(doc.get()));
  XPathObjectHandle found;
  if (context != nullptr) {
    found.reset(xmlXPathEval(reinterpret_cast<const xmlChar*>(kDiskSourceXPath), context.get()));
  }
  if (found == nullptr) throw Error(ErrorKind::kOther, what + ": cannot search it for disks");
  std::vector<DomainDisk> disks;
  const xmlNodeSet* nodes = found->nodesetval;
  for (int i = 0; nodes != nullptr && i < nodes->nodeNr; i++) {
    xmlNodePtr source = nodes->nodeTab[i];
    DomainDisk d;
    d.source = Attribute(source, "file");
    if (d.source.empty()) d.source = Attribute(source, "dev");
    if (d.source.empty()) continue;
    xmlNodePtr disk = source->parent;
    if (xmlNodePtr target = Child(disk, "target")) d.target = ShortName(Attribute(target, "dev"));
    if (xmlNodePtr driver = Child(disk, "driver")) d.format = ShortName(Attribute(driver, "type"));
    disks.push_back(std::move(d));
  }
  return disks;
}

std::vector<std::string> DiskSourcesFromDomainXml(const std::string& xml,
                                                  const std::string& vm_name) {
  std::vector<std::string> sources;
  for (auto& d : DisksFromDomainXml(xml, vm_name)) sources.push_back(std::move(d.source));
  return sources;
}

}  // namespace vmback

namespace vmback {
namespace {

void Remove(xmlNodePtr node) {
  xmlUnlinkNode(node);
  xmlFreeNode(node);
}

void RemoveChildren(xmlNodePtr node, const char* name) {
  while (xmlNodePtr c = Child(node, name)) Remove(c);
}

const xmlChar* X(const char* s) { return reinterpret_cast<const xmlChar*>(s); }
const xmlChar* X(const std::string& s) { return X(s.c_str()); }

// Points disk at the restored image: a plain file of the given format, with
// no backing chain (the restored image stands alone).
void PointDiskAt(xmlNodePtr disk, const RestoredDisk& r) {
  xmlSetProp(disk, X("type"), X("file"));
  RemoveChildren(disk, "source");
  RemoveChildren(disk, "backingStore");
  RemoveChildren(disk, "mirror");
  xmlNodePtr source = xmlNewNode(nullptr, X("source"));
  xmlSetProp(source, X("file"), X(r.path));
  xmlNodePtr driver = Child(disk, "driver");
  if (driver == nullptr) {
    driver = xmlNewChild(disk, nullptr, X("driver"), nullptr);
    xmlSetProp(driver, X("name"), X("qemu"));
  }
  if (!r.format.empty()) xmlSetProp(driver, X("type"), X(r.format));
  xmlAddNextSibling(driver, source);
}

// The elements of a recorded domain XML that reach past the guest into the
// host: QEMU arguments and overrides (libvirt's qemu namespace), host
// devices and directories passed through, scripts run on the host.
constexpr char kQemuNamespace[] = "http://libvirt.org/schemas/domain/qemu/1.0";

// Throws Error(kConfig) naming the first such element below node.
void RefuseHostReach(xmlNodePtr node, const std::string& what) {
  for (xmlNodePtr c = node->children; c != nullptr; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    const std::string name = reinterpret_cast<const char*>(c->name);
    const bool qemu = c->ns != nullptr && c->ns->href != nullptr && xmlStrEqual(c->ns->href, X(kQemuNamespace));
    if (qemu || name == "hostdev" || name == "filesystem" || name == "script")
      throw Error(ErrorKind::kConfig,
                  what + ": its recorded domain XML has <" + (qemu ? "qemu:" : "") + EscapeForTerminal(name) +
                      ">, which reaches into this host (QEMU arguments, host devices or directories, "
                      "host scripts); not defined from a backup. Check it ('vmback ls POINT --vms --json') "
                      "and define it by hand");
    RefuseHostReach(c, what);
  }
}

}  // namespace

std::string DomainNameOf(const std::string& xml, const std::string& what) {
  XmlDocHandle doc = ParseDomainXml(xml, what);
  xmlNodePtr domain = xmlDocGetRootElement(doc.get());
  xmlNodePtr name = domain != nullptr ? Child(domain, "name") : nullptr;
  std::unique_ptr<xmlChar, XmlStringFree> text(name != nullptr ? xmlNodeGetContent(name) : nullptr);
  const std::string out = text != nullptr ? reinterpret_cast<const char*>(text.get()) : "";
  if (!IsValidVmName(out)) throw Error(ErrorKind::kConfig, what + " has no valid domain <name>");
  return out;
}

std::string RewriteDomainXml(const std::string& xml, const std::vector<RestoredDisk>& disks,
                             const std::string& new_name, const std::string& what) {
  XmlDocHandle doc = ParseDomainXml(xml, what);
  xmlNodePtr domain = xmlDocGetRootElement(doc.get());
  if (domain == nullptr || !xmlStrEqual(domain->name, X("domain")))
    throw Error(ErrorKind::kConfig, what + " is not a <domain>");
  RefuseHostReach(domain, what);
  if (xmlNodePtr devices = Child(domain, "devices")) {
    for (xmlNodePtr d = devices->children; d != nullptr; d = d->next) {
      if (d->type != XML_ELEMENT_NODE || !xmlStrEqual(d->name, X("disk")) || Attribute(d, "device") == "cdrom")
        continue;
      xmlNodePtr target = Child(d, "target");
      const std::string dev = target ? ShortName(Attribute(target, "dev")) : "";
      const RestoredDisk* r = nullptr;
      for (const auto& candidate : disks)
        if (!dev.empty() && candidate.target == dev) r = &candidate;
      if (r != nullptr) {
        PointDiskAt(d, *r);
      } else if (Child(d, "source") != nullptr) {
        throw Error(ErrorKind::kConfig, what + ": disk " + (dev.empty() ? std::string("without a target") : dev) +
                                            " is not restored, so the domain cannot be defined on the restored disks");
      }
    }
  }
  if (!new_name.empty()) {
    xmlNodePtr name = Child(domain, "name");
    if (name == nullptr) name = xmlNewChild(domain, nullptr, X("name"), nullptr);
    xmlNodeSetContent(name, nullptr);
    xmlNodeAddContent(name, X(new_name));  // escaped as text
    // A copy beside the original: libvirt makes a new UUID, new MAC
    // addresses and a new UEFI variable store instead of sharing them.
    RemoveChildren(domain, "uuid");
    if (xmlNodePtr os = Child(domain, "os")) RemoveChildren(os, "nvram");
    if (xmlNodePtr devices = Child(domain, "devices"))
      for (xmlNodePtr d = devices->children; d != nullptr; d = d->next)
        if (d->type == XML_ELEMENT_NODE && xmlStrEqual(d->name, X("interface"))) RemoveChildren(d, "mac");
  }
  xmlChar* out = nullptr;
  int size = 0;
  xmlDocDumpMemoryEnc(doc.get(), &out, &size, "UTF-8");
  if (out == nullptr) throw Error(ErrorKind::kOther, what + ": cannot write the rewritten XML");
  std::string text(reinterpret_cast<const char*>(out), static_cast<size_t>(size));
  xmlFree(out);
  return text;
}

}  // namespace vmback
