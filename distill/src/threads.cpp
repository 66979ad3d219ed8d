#include "hilo/distill/threads.hpp"

#include <stdexcept>
#include <string>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace hilo::distill {

void set_compute_threads(int n) {
  if (n < 1) throw std::invalid_argument("threads must be >= 1, got " + std::to_string(n));
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int compute_threads() { return Eigen::nbThreads(); }

}  // namespace hilo::distill
