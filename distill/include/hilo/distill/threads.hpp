#pragma once
// How many threads Eigen's products and distill's OpenMP loops use, set by whoever owns the thread
// that runs the work: an executable's main (hilo-train, hilo-pipeline, the benchmarks) or the daemon's
// job worker before it runs a job. Library functions (train_classifier, train_student, run_pipeline)
// never call it: they run on their caller's thread and leave its settings alone.
//
// The count is OpenMP's per-thread nthreads setting of the calling thread (Eigen, whose own global
// count hilo never sets, reads it through omp_get_max_threads()), so two threads of one process may
// use different counts and a job cannot change the count of another. n must be >= 1
// (std::invalid_argument otherwise). Without OpenMP it only checks n.
namespace hilo::distill {

void set_compute_threads(int n);
// The count the calling thread's Eigen products would use now.
int compute_threads();

}  // namespace hilo::distill
