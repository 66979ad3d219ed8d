#pragma once
// Splits of the file-backed sources (data.hpp, "A lab's own files"); load_splits dispatches here.
#include "hilo/distill/data.hpp"

namespace hilo::distill {

Splits load_file_splits(const DataOptions& o, const ImageDecoder& decode);

}  // namespace hilo::distill
