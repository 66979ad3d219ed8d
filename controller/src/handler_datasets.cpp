// A lab's own datasets in job arguments: options read strictly and their files confined to the data
// directory (handler_detail.hpp).
#include "handler_detail.hpp"
#include "hilo/controller/security.hpp"
#include "hilo/io/options_json.hpp"

namespace hilo::controller::handler_detail {
namespace fs = std::filesystem;

std::optional<Refusal> confine_dataset_paths(distill::DataOptions& o, const fs::path& data_dir, const std::string& where,
                                             PathOrigin origin) {
  // Every path the options can carry, whichever source they name: a key the source does not read is
  // confined too, so no config can point the daemon at a file outside its data directory.
  const std::pair<const char*, std::string*> fields[] = {
      {"images", &o.images}, {"labels", &o.labels}, {"test_images", &o.test_images}, {"test_labels", &o.test_labels},
      {"dir", &o.dir},       {"fashion_dir", &o.fashion_dir}, {"mnist_dir", &o.mnist_dir}};
  for (const auto& [key, value] : fields) {
    if (value->empty()) continue;
    auto p = origin == PathOrigin::request ? confine_path(data_dir, *value) : confine_stored_path(data_dir, *value);
    if (auto* why = std::get_if<std::string>(&p)) return Refusal{ErrorCode::forbidden_path, where + "." + key + ": " + *why};
    const auto& path = std::get<fs::path>(p);
    const std::string k(key);
    const bool folder = k == "dir" || k == "fashion_dir" || k == "mnist_dir";
    std::error_code ec;
    if (!fs::exists(path, ec))
      return Refusal{ErrorCode::not_found,
                     where + "." + key + ": no " + (folder ? "folder" : "file") + " '" + *value + "' in the data directory"};
    *value = path.string();
  }
  return std::nullopt;
}

std::variant<distill::DataOptions, Refusal> capture_dataset_options(const nlohmann::json& spec, const fs::path& data_dir) {
  distill::DataOptions o;
  try {
    o = io::read_options(spec, "args.dataset", distill::DataOptions{});
  } catch (const std::exception& e) {
    return Refusal{ErrorCode::bad_argument, e.what()};
  }
  if (!o.file_backed())
    return Refusal{ErrorCode::bad_argument, "args.dataset.name must be a file source (npy, cifar10-bin, png-folder) in the object "
                                            "form; a built-in dataset is named by a string (\"dataset\": \"fashion-mnist\")"};
  if (auto e = o.validate(); !e.empty()) return Refusal{ErrorCode::bad_argument, "args.dataset: " + e};
  if (o.color != "luminance")
    return Refusal{ErrorCode::bad_argument, "args.dataset.color must be \"luminance\": the input SLM shows one intensity channel"};
  if (auto r = confine_dataset_paths(o, data_dir, "args.dataset")) return *r;
  return o;
}

}  // namespace hilo::controller::handler_detail
