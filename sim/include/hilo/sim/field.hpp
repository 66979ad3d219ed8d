#pragma once
// Sampled scalar fields and intensity images: the array types every hilo component exchanges.
//
// Arrays are row-major so that element (r, c) sits where numpy's C-order array[r, c] does; a .npy
// file maps onto them without a transpose. Row index = y (down), column index = x (right).
#include <complex>

#include <Eigen/Core>

namespace hilo::sim {

using cplx = std::complex<double>;

// Complex amplitude U(y, x) on a regular grid.
using CArray = Eigen::Array<cplx, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// Real-valued image: intensity, phase (rad), height (m), camera counts.
using RArray = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A monochromatic field: complex amplitude sampled at pitch_m (same in x and y) at wavelength_m.
// The grid is centred: sample (r, c) sits at x = (c - cols/2)·pitch, y = (r - rows/2)·pitch.
struct Field {
  CArray u;
  double pitch_m = 0.0;
  double wavelength_m = 0.0;
};

}  // namespace hilo::sim
