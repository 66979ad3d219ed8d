#include "hilo/controller/dataset.hpp"

#include <zlib.h>

namespace hilo::controller {

namespace {

std::vector<std::uint8_t> gunzip_file(const std::filesystem::path& p) {
  gzFile f = gzopen(p.c_str(), "rb");
  if (!f) throw DatasetError(p.string() + ": cannot open");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      throw DatasetError(p.string() + ": gzip error: " + msg);
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  gzclose(f);
  return out;
}

std::uint32_t be32(const std::vector<std::uint8_t>& b, std::size_t off) {
  return (std::uint32_t{b[off]} << 24) | (std::uint32_t{b[off + 1]} << 16) | (std::uint32_t{b[off + 2]} << 8) | b[off + 3];
}

}  // namespace

ImageSet read_idx_split(const std::filesystem::path& dir, const std::string& split) {
  if (split != "train" && split != "test") throw DatasetError("dataset split must be 'train' or 'test', got '" + split + "'");
  const std::string stem = split == "train" ? "train" : "t10k";
  const auto ip = dir / (stem + "-images-idx3-ubyte.gz");
  const auto lp = dir / (stem + "-labels-idx1-ubyte.gz");
  const auto img = gunzip_file(ip);
  const auto lab = gunzip_file(lp);
  if (img.size() < 16 || be32(img, 0) != 0x00000803) throw DatasetError(ip.string() + ": not an IDX3 uint8 image file");
  if (lab.size() < 8 || be32(lab, 0) != 0x00000801) throw DatasetError(lp.string() + ": not an IDX1 uint8 label file");
  ImageSet s;
  s.count = be32(img, 4);
  s.rows = be32(img, 8);
  s.cols = be32(img, 12);
  if (be32(lab, 4) != s.count) throw DatasetError(lp.string() + ": label count differs from image count");
  if (img.size() != 16 + s.count * s.rows * s.cols) throw DatasetError(ip.string() + ": payload size does not match header");
  if (lab.size() != 8 + s.count) throw DatasetError(lp.string() + ": payload size does not match header");
  s.images.assign(img.begin() + 16, img.end());
  s.labels.assign(lab.begin() + 8, lab.end());
  return s;
}

std::vector<std::string> DatasetLibrary::names() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : dirs_) out.push_back(k);
  return out;
}

std::shared_ptr<const ImageSet> DatasetLibrary::get(const std::string& name, const std::string& split) {
  auto it = dirs_.find(name);
  if (it == dirs_.end()) throw DatasetError("unknown dataset '" + name + "'");
  std::lock_guard lk(mu_);
  const std::string key = name + "/" + split;
  if (auto c = cache_.find(key); c != cache_.end()) return c->second;
  auto s = std::make_shared<const ImageSet>(read_idx_split(it->second, split));
  cache_[key] = s;
  return s;
}

}  // namespace hilo::controller
