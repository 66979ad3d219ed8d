#pragma once
// Loading the simulator's YAML configs: as-built profiles, camera settings and the simulated bench.
//
// Strict by design: an unknown key, a value of the wrong type, or an out-of-range value each throws
// ConfigError whose message starts with the source (file path) and names the full field path and the
// rule, e.g.
//   "configs/profiles/x.yaml: profile.misalignment.rotation_deg must be a number, got 'abc' (line 6)"
//   "cam.yaml: unknown key 'camera.bitdepth' (line 3; did you mean 'bit_depth'?)"
//   "cam.yaml: camera.bit_depth must be in [8, 16], got 20"
// Missing files and YAML syntax errors throw ConfigError too. Omitted keys keep the Options' defaults.
// The schema of every file is in docs/sim.md.
#include <filesystem>
#include <optional>
#include <string>

#include "hilo/sim/as_built.hpp"
#include "hilo/sim/bench_model.hpp"
#include "hilo/sim/camera_model.hpp"
#include "hilo/sim/config_error.hpp"

namespace hilo::sim {

// A profile document: a single top-level mapping `profile:` (configs/profiles/*.yaml).
AsBuiltProfile parse_profile(const std::string& yaml_text, const std::string& source);
AsBuiltProfile load_profile(const std::filesystem::path& path);

// A camera document: top-level `camera:` (CameraOptions, noise included). A profile document is also
// accepted: the result is the default CameraOptions with the profile's sensor noise and seed.
CameraOptions parse_camera(const std::string& yaml_text, const std::string& source);
CameraOptions load_camera(const std::filesystem::path& path);

// A bench document (configs/sim.yaml): the `simulator:` section is read strictly into BenchOptions;
// other top-level sections (the device roles, read by the drivers) are left alone. simulator.profile is
// either a file path, relative to the bench file's folder, or an inline profile mapping.
// `base_dir` resolves relative profile paths for parse_bench.
BenchOptions parse_bench(const std::string& yaml_text, const std::string& source,
                         const std::filesystem::path& base_dir);
BenchOptions load_bench(const std::filesystem::path& path);

// The `design:` section of a bench document: the optics as designed (wavelength, input, element,
// camera; the keys of `simulator:` without `profile`), read as strictly. The profile of the result is
// the ideal one. std::nullopt when the document has no `design:` section.
std::optional<BenchOptions> parse_design(const std::string& yaml_text, const std::string& source);

}  // namespace hilo::sim
