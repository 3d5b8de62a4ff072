// What is wrong before a run, found all at once: `vmback plan` lists every
// problem with what to do about it; `vmback run` refuses on the ones that
// would fail it, before any VM is touched, and warns about the others.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "util/error.h"

namespace vmback {

struct Problem {
  ErrorKind kind;
  std::string text;  // what is wrong, and what to do
  // The run fails on it (else the run goes on, and only that part of its
  // work is lost: a report or metrics file not written).
  bool fails_run = true;
};

class Problems {
 public:
  // Runs check; an Error it throws becomes a problem instead of going on up.
  void Check(const std::function<void()>& check);
  // Adds a problem; one said already is not said again.
  void Add(ErrorKind kind, const std::string& text, bool fails_run = true);

  const std::vector<Problem>& all() const { return all_; }
  bool empty() const { return all_.empty(); }
  // Throws the problem that fails the run as an Error of its kind; when
  // several do, one Error of the first one's kind that names them all.
  // Nothing when there is none.
  void ThrowIfRunFails() const;

 private:
  std::vector<Problem> all_;
};

}  // namespace vmback
