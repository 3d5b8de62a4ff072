#include "job/problems.h"

#include <algorithm>

namespace vmback {

void Problems::Check(const std::function<void()>& check) {
  try {
    check();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCrash) throw;  // a simulated death is not a finding
    Add(e.kind(), e.what());
  }
}

void Problems::Add(ErrorKind kind, const std::string& text, bool fails_run) {
  for (const auto& p : all_)
    if (p.text == text) return;
  all_.push_back({kind, text, fails_run});
}

void Problems::ThrowIfRunFails() const {
  std::vector<const Problem*> failing;
  for (const auto& p : all_)
    if (p.fails_run) failing.push_back(&p);
  if (failing.empty()) return;
  if (failing.size() == 1) throw Error(failing[0]->kind, failing[0]->text);
  // One message holding them all: it is also the report's and the
  // journal's record of why the run did not go ahead.
  std::string text = std::to_string(failing.size()) + " problems stop the run before anything is done:";
  for (size_t i = 0; i < failing.size(); i++) text += " (" + std::to_string(i + 1) + ") " + failing[i]->text;
  throw Error(failing[0]->kind, text);
}

}  // namespace vmback
