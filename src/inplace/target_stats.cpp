#include "inplace/target_stats.h"

#include <chrono>
#include <sstream>

#include "inplace/target_ops.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

DestinationStats TargetStats(InplaceTarget* target, Env* env, const std::vector<std::string>& points, Logger*) {
  std::vector<std::string> names = points.empty() ? target->ListPoints() : points;
  DestinationStats s;
  s.json = {{"target", target->describe()}, {"points", nlohmann::json::array()}};
  std::ostringstream text;
  text << target->describe() << "\n";
  for (const auto& asked : names) {
    const OpenedTargetPoint p = OpenTargetPoint(target, env, asked);
    RunLimits limits;
    limits.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    const std::vector<std::string> argv = {"du", "-s", "-x", "-B1", "--", p.view->root()};
    const RunResult r = env->RunLimited(argv, limits);
    if (r.exit_code != 0)
      throw Error(ErrorKind::kIo, "du -s -x -B1 " + p.view->root() + " failed (exit " + std::to_string(r.exit_code) +
                                      "): " + r.err);
    uint64_t bytes = 0;
    const std::string field = r.out.substr(0, r.out.find('\t'));
    if (field.empty() || field.find_first_not_of("0123456789") != std::string::npos || !ParseSize(field, &bytes))
      throw Error(ErrorKind::kIo, "du -s -x -B1 " + p.view->root() + " printed no size: " + r.out);
    s.json["points"].push_back({{"name", p.name}, {"du_bytes", bytes}});
    text << "  " << p.name << ": " << FormatBytes(bytes) << " on disk (du of the point)\n";
  }
  s.text = text.str();
  return s;
}

}  // namespace vmback
