// Shared by the zoo's CPU custom operators (onednn_conv.cc, batchnorm.cc, split_attention.cc, momentum.cc): one fixed
// team size, a pool of sleeping helper threads, one lock (MindSpore may launch independent kernels concurrently
// while one call already uses every core), the float32 check of their entry points, and the entry-point macro.
#ifndef ZOO_CPU_THREADS_H_
#define ZOO_CPU_THREADS_H_

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zoo {

// Threads. oneDNN's OpenMP team would leave its workers spinning after every call (libgomp spins ~300k iterations
// unless OMP_WAIT_POLICY=PASSIVE), and on 2 cores that spin ate ~100 ms of MindSpore's own kernels per ResNeXt-50
// step. Passive waiting cannot be set here: MindSpore (and PyTorch, sharing the same libgomp in one process) load
// libgomp first, and it reads the policy once. So each call splits the batch into one chunk per core and runs the
// chunks on single-threaded oneDNN primitives: the caller takes the first, helper threads that sleep on a condition
// variable take the rest. A batch of 1 runs on an OpenMP team instead. The team size is ZOO_ONEDNN_THREADS when
// set, else every core the process may run on; not OMP_NUM_THREADS, which MindSpore's runtime sets to 1 for itself.
inline int team_size() {
  static const int size = [] {
    const char *env = std::getenv("ZOO_ONEDNN_THREADS");
    const int requested = env != nullptr ? std::atoi(env) : 0;
    return requested > 0 ? requested : omp_get_num_procs();
  }();
  return size;
}

class Helpers {
 public:
  explicit Helpers(int count) {
    for (int i = 0; i < count; ++i) std::thread([this, i] { loop(i); }).detach();
  }

  // jobs[0] runs on the caller, jobs[1..] on helpers 0..; returns when all have finished.
  void run_all(const std::vector<std::function<void()>> &jobs) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_ = &jobs;
      pending_ = static_cast<int>(jobs.size()) - 1;
      ++generation_;
    }
    wake_.notify_all();
    jobs[0]();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    jobs_ = nullptr;
  }

 private:
  void loop(int index) {
    omp_set_num_threads(1);
    uint64_t seen = 0;
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (jobs_ == nullptr || index + 1 >= static_cast<int>(jobs_->size())) continue;
        job = (*jobs_)[index + 1];
      }
      job();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::vector<std::function<void()>> *jobs_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
};

inline Helpers &helpers() {
  static Helpers *pool = new Helpers(team_size() - 1);  // never destroyed: its threads block until the process ends
  return *pool;
}

// Whether the first `count` AOT parameters are float32 (MindSpore names it "float32" or "float").
inline bool all_float32(int count, const char **dtypes) {
  for (int i = 0; i < count; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0 && std::strcmp(dtypes[i], "float") != 0) return false;
  }
  return true;
}

inline std::mutex &op_mutex() {
  static std::mutex mutex;
  return mutex;
}

// Runs fn(part, begin, end) over [0, count) split into one contiguous range per thread of the team (fewer when
// count is smaller), the caller taking part 0.
inline void parallel_ranges(int64_t count, const std::function<void(int, int64_t, int64_t)> &fn) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(team_size(), count));
  std::vector<std::function<void()>> jobs;
  for (int64_t t = 0, begin = 0; t < parts; ++t) {
    const int64_t end = begin + count / parts + (t < count % parts ? 1 : 0);
    jobs.emplace_back([&fn, t, begin, end] { fn(static_cast<int>(t), begin, end); });
    begin = end;
  }
  if (parts == 1) jobs[0]();
  else helpers().run_all(jobs);
}

}  // namespace zoo

// An exported AOT entry point (MindSpore's signature: nparam, params, ndims, shapes, dtypes, stream, extra) that
// returns `call`, an expression over n, p, d, s, t.
#define ZOO_AOT_ENTRY(symbol, call) \
  int symbol(int n, void **p, int *d, int64_t **s, const char **t, void *, void *) { return call; }

#endif  // ZOO_CPU_THREADS_H_
