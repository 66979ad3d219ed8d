#include "hilo/controller/capture.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <stdexcept>

#include <opencv2/imgcodecs.hpp>

#include "hilo/controller/hdf5_run.hpp"
#include "hilo/controller/run_documents.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/drivers/frame_gate.hpp"
#include "hilo/io/figures.hpp"
#include "hilo/sim/npy.hpp"

namespace hilo::controller {

using io::Colormap;
using io::ImageOptions;
using io::render_grid;

using nlohmann::json;
namespace fs = std::filesystem;

std::string CaptureOptions::validate() const {
  if (chunk_records < 1) return "capture.chunk_records must be >= 1, got 0";
  if (!(chunk_seconds > 0)) return "capture.chunk_seconds must be > 0, got " + std::to_string(chunk_seconds);
  if (grab_timeout.count() < 1 || grab_timeout.count() > 600000) {
    return "capture.timeout_ms must be in [1, 600000], got " + std::to_string(grab_timeout.count());
  }
  if (scale < 0 || scale > 256) return "capture.scale must be in [0, 256], got " + std::to_string(scale);
  if (max_input_attempts < 1 || max_input_attempts > 1000) {
    return "capture.max_input_attempts must be in [1, 1000], got " + std::to_string(max_input_attempts);
  }
  return {};
}

// ------------------------------------------------------------------------------------------ placement

int fitting_scale(int rows, int cols, int slm_rows, int slm_cols) {
  if (rows <= 0 || cols <= 0) return 0;
  return std::min(slm_rows / rows, slm_cols / cols);
}

cv::Mat place_on_slm(const std::uint8_t* image, int rows, int cols, int slm_rows, int slm_cols, int bit_depth,
                     int scale) {
  if (scale == 0) scale = fitting_scale(rows, cols, slm_rows, slm_cols);
  if (scale < 1 || rows * scale > slm_rows || cols * scale > slm_cols) {
    throw std::invalid_argument("input " + std::to_string(rows) + "x" + std::to_string(cols) + " at scale " +
                                std::to_string(scale) + " does not fit the " + std::to_string(slm_rows) + "x" +
                                std::to_string(slm_cols) + " SLM");
  }
  const bool wide = bit_depth > 8;
  const double gain = wide ? (std::ldexp(1.0, bit_depth) - 1.0) / 255.0 : 1.0;
  cv::Mat p = cv::Mat::zeros(slm_rows, slm_cols, wide ? CV_16UC1 : CV_8UC1);
  const int r0 = (slm_rows - rows * scale) / 2, c0 = (slm_cols - cols * scale) / 2;
  for (int r = 0; r < rows * scale; ++r) {
    const std::uint8_t* src = image + static_cast<std::size_t>(r / scale) * cols;
    if (wide) {
      auto* dst = p.ptr<std::uint16_t>(r0 + r) + c0;
      for (int c = 0; c < cols * scale; ++c) dst[c] = static_cast<std::uint16_t>(std::lround(src[c / scale] * gain));
    } else {
      auto* dst = p.ptr<std::uint8_t>(r0 + r) + c0;
      for (int c = 0; c < cols * scale; ++c) dst[c] = src[c / scale];
    }
  }
  return p;
}

// -------------------------------------------------------------------------------------------- capture

namespace {

drivers::RetryCounters retry_delta(const drivers::RetryCounters* now, const drivers::RetryCounters& base) {
  if (!now) return {};
  return {now->attempts - base.attempts, now->retries - base.retries, now->failures - base.failures,
          now->reconnects - base.reconnects};
}

struct Pending {
  std::string frames, inputs, indices, labels;
  std::size_t n = 0;
};

std::string frame_dtype(int type) { return type == CV_8UC1 ? "|u1" : "<u2"; }

std::vector<std::uint8_t> encode_png(const cv::Mat& bgr) {
  std::vector<std::uint8_t> buf;
  cv::imencode(".png", bgr, buf);
  return buf;
}

json placement_json(const drivers::Slm& slm, int scale) {
  return {{"scale", scale}, {"slm_rows", slm.height_px()}, {"slm_cols", slm.width_px()}, {"slm_bit_depth", slm.bit_depth()}};
}
json devices_json(const drivers::Slm& slm, const drivers::Camera& cam) {
  return {{"slm", slm.name()}, {"camera", cam.name()}, {"exposure_ms", cam.exposure_ms()}, {"gain_db", cam.gain_db()}};
}

int resolved_scale(const CaptureInputs& in, const CaptureOptions& opt, const drivers::Slm& slm) {
  return opt.scale == 0 ? fitting_scale(static_cast<int>(in.set->rows), static_cast<int>(in.set->cols), slm.height_px(),
                                        slm.width_px())
                        : opt.scale;
}

const std::uint8_t* image_of(const CaptureInputs& in, std::size_t k) {
  const auto& set = *in.set;
  return set.images.data() + (in.start + k) * set.rows * set.cols;
}

// run.descriptor's data_keys: per-record dtype, shape, units and source of each stored array.
json data_keys(const CaptureInputs& in, const json& manifest, const Devices& devices, const std::string& frame_dtype_str,
               int frame_rows, int frame_cols) {
  const auto& set = *in.set;
  const json& p = manifest["params"];
  const std::string inputs_from =
      p.contains("dataset") ? "dataset:" + p["dataset"].get<std::string>() + "/" + p.value("split", std::string("train"))
                            : std::string("request");
  json k = {{"frames", {{"dtype", frame_dtype_str}, {"shape", {frame_rows, frame_cols}}, {"units", "counts"},
                        {"source", "camera:" + devices.camera.name()}}},
            {"inputs", {{"dtype", "|u1"}, {"shape", {set.rows, set.cols}}, {"units", "levels"},
                        {"source", "input_slm:" + devices.slm.name()}}},
            {"indices", {{"dtype", "<i8"}, {"shape", json::array()}, {"units", ""}, {"source", inputs_from}}}};
  if (in.has_labels) {
    k["labels"] = {{"dtype", "|u1"}, {"shape", json::array()}, {"units", ""}, {"source", inputs_from}};
  }
  return k;
}
// The run's HDF5 copy during a capture (CaptureOptions::hdf5). The first failure ends the copy, never
// the capture: the .npy run is the record, status() says how far the copy got and why it stopped.
class Hdf5Copy {
 public:
  // Rebuilds run.h5 from every record `w` already holds (none for a new run).
  Hdf5Copy(bool enabled, const RunWriter& w) : enabled_(enabled) {
    if (!enabled_) return;
    attempt([&] { file_.emplace(hdf5_from_run(w.dir() / "run.h5", w.dir(), w.manifest())); });
  }
  // `manifest`: the run's manifest when this is the first chunk of the file (it now knows the frame
  // format); written before the append starts SWMR mode, so early readers see it.
  void append(const std::vector<RunWriter::Array>& arrays, std::size_t n, const json* manifest) {
    if (!file_) return;
    attempt([&] {
      if (manifest && !file_->swmr()) file_->update_metadata(*manifest);
      file_->append(arrays, n);
    });
  }
  // Refreshes the file's metadata from the run's final manifest and closes it.
  void finish(const json& manifest) {
    if (file_) attempt([&] { file_->finish(manifest); });
    file_.reset();
  }
  bool enabled() const { return enabled_; }
  bool complete() const { return error_.empty(); }
  json status() const { return {{"file", "run.h5"}, {"complete", complete()}, {"records", records_}, {"error", error_}}; }

 private:
  template <typename F>
  void attempt(F&& f) {
    try {
      f();
      records_ = file_ ? file_->records() : records_;
    } catch (const std::exception& e) {
      error_ = e.what();
      file_.reset();
    }
  }
  bool enabled_;
  std::optional<Hdf5RunWriter> file_;
  std::string error_;
  std::size_t records_ = 0;
};

// The show + grab loop over inputs [w.records(), in.count) into `w`.
JobOutcome capture_loop(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, RunWriter& w, int scale,
                        JobControl& ctl, const std::function<double()>& monotonic_s, json base_stats) {
  auto& slm = devices.slm;
  auto& cam = devices.camera;
  const auto& set = *in.set;
  const int rows = static_cast<int>(set.rows), cols = static_cast<int>(set.cols);
  const auto total = static_cast<std::int64_t>(in.count);

  Pending pend;
  int frame_type = -1, frame_rows = 0, frame_cols = 0;
  if (w.manifest().contains("frame")) {
    const auto& f = w.manifest()["frame"];
    frame_type = f.value("dtype", "") == "|u1" ? CV_8UC1 : CV_16UC1;
    frame_rows = f.value("rows", 0);
    frame_cols = f.value("cols", 0);
  }
  RunDocuments docs(ctl);
  {
    const json& m = w.manifest();
    json config = m["params"];
    config["chunk_records"] = opt.chunk_records;
    config["scale"] = scale;
    config["timeout_ms"] = opt.grab_timeout.count();
    docs.start({{"config", devices.bench_config}, {"devices", m.value("devices", json::object())},
                {"placement", m.value("placement", json::object())}},
               config, base_stats.value("resumes", 0) > 0, w.records());
    if (frame_type >= 0) docs.descriptor(data_keys(in, m, devices, frame_dtype(frame_type), frame_rows, frame_cols));
  }
  std::vector<cv::Mat> preview_frames, preview_inputs;
  // A continued run: the previews show the run's first records, read back from its first chunks.
  for (const auto& c : w.manifest()["chunks"]) {
    if (preview_frames.size() >= opt.previews || frame_type < 0) break;
    try {
      const auto f = sim::read_npy(w.dir() / c["files"]["frames"].get<std::string>());
      const auto i = sim::read_npy(w.dir() / c["files"]["inputs"].get<std::string>());
      for (std::size_t r = 0; r < f.shape[0] && preview_frames.size() < opt.previews; ++r) {
        const std::size_t fb = f.bytes.size() / f.shape[0], ib = i.bytes.size() / i.shape[0];
        cv::Mat fm(frame_rows, frame_cols, frame_type), im(rows, cols, CV_8UC1);
        std::memcpy(fm.data, f.bytes.data() + r * fb, fb);
        std::memcpy(im.data, i.bytes.data() + r * ib, ib);
        preview_frames.push_back(fm);
        preview_inputs.push_back(im);
      }
    } catch (const std::exception&) {
      break;  // previews are a convenience; the records themselves were checked by reopen()
    }
  }

  // Touched by the commit task while a chunk is in flight, by this thread only after settling it.
  Hdf5Copy h5(opt.hdf5, w);

  CaptureCounters cnt;
  const drivers::RetryCounters slm_base = devices.slm_retries ? *devices.slm_retries : drivers::RetryCounters{};
  const drivers::RetryCounters cam_base = devices.camera_retries ? *devices.camera_retries : drivers::RetryCounters{};
  // Frame integrity (drivers/frame_gate.hpp): counter and device timestamp against the settle.
  drivers::FrameGate gate;
  // The rate of this session of the capture against the devices' own: settle + exposure + readout per
  // frame, readout being the median time grab() took beyond the exposure (trigger, sensor readout,
  // transfer), so the ratio measures what hilo adds (showing, storing, re-grabs).
  std::vector<double> grab_ms;
  std::uint64_t stored_here = 0;
  const double loop_start = monotonic_s();
  auto rate_json = [&] {
    json r = {{"frames", stored_here}, {"seconds", monotonic_s() - loop_start},
              {"settle_ms", slm.settle_time_ms()}, {"exposure_ms", cam.exposure_ms()}};
    if (grab_ms.empty()) return r;
    std::vector<double> g = grab_ms;
    std::nth_element(g.begin(), g.begin() + std::ptrdiff_t(g.size() / 2), g.end());
    const double readout_ms = std::max(0.0, g[g.size() / 2] - cam.exposure_ms());
    const double device_ms = slm.settle_time_ms() + cam.exposure_ms() + readout_ms;
    const double fps = r["seconds"].get<double>() > 0 ? double(stored_here) / r["seconds"].get<double>() : 0.0;
    r["readout_ms"] = readout_ms;
    r["frames_per_s"] = fps;
    r["device_limited_frames_per_s"] = 1000.0 / device_ms;
    r["ratio"] = fps * device_ms / 1000.0;
    return r;
  };
  auto stats = [&] {
    cnt.slm_driver = retry_delta(devices.slm_retries, slm_base);
    cnt.camera_driver = retry_delta(devices.camera_retries, cam_base);
    json j = base_stats;
    j["capture"] = cnt.to_json();
    j["rate"] = rate_json();
    return j;
  };
  auto publish_stats = [&] {
    const json j = stats();
    devices.set_job_counters(cnt);
    ctl.set_stats(j);
  };
  double chunk_start = monotonic_s();

  // A chunk is made durable (.npy files fsynced, manifest replaced, directory fsynced) on a background
  // task while the devices produce the next frames, so the fsync latency overlaps device time instead
  // of adding to it. At most one chunk is in flight: the next commit first waits for it (and rethrows
  // its error), so the manifest still lists only complete chunks in order, and the catalog checkpoint
  // (on this thread) names only records that are already durable.
  std::future<void> in_flight;
  auto settle_in_flight = [&] {
    if (!in_flight.valid()) return;
    in_flight.get();
    ctl.checkpoint(static_cast<std::int64_t>(w.records()));
  };
  auto commit = [&] {
    if (pend.n == 0) return;
    std::vector<RunWriter::Array> arrays;
    arrays.push_back({"frames", frame_dtype(frame_type), {pend.n, std::size_t(frame_rows), std::size_t(frame_cols)},
                      std::move(pend.frames)});
    arrays.push_back({"inputs", "|u1", {pend.n, set.rows, set.cols}, std::move(pend.inputs)});
    arrays.push_back({"indices", "<i8", {pend.n}, std::move(pend.indices)});
    if (in.has_labels) arrays.push_back({"labels", "|u1", {pend.n}, std::move(pend.labels)});
    const std::size_t n = pend.n;
    pend = Pending{};
    settle_in_flight();
    std::optional<json> first_manifest;
    if (h5.enabled() && w.records() == 0) first_manifest = w.manifest();
    in_flight = std::async(std::launch::async, [&w, &h5, &docs, arrays = std::move(arrays), n, m = std::move(first_manifest)] {
      w.append_chunk(arrays, n);
      h5.append(arrays, n, m ? &*m : nullptr);  // after the .npy chunk is durable; never throws
      const json& c = w.manifest()["chunks"].back();
      docs.event(c["first"].get<std::uint64_t>(), c["count"].get<std::uint64_t>(), c["files"]);
    });
    publish_stats();
    chunk_start = monotonic_s();
  };

  // The manifest's last keys: error, stats and, with opt.hdf5, the HDF5 copy's status (also in stats).
  auto final_keys = [&](const std::string& err) {
    json st = stats();
    json keys = {{"error", err}};
    if (h5.enabled()) st["hdf5"] = keys["hdf5"] = h5.status();
    keys["stats"] = st;
    ctl.set_stats(st);
    return keys;
  };
  // Closes the HDF5 copy with the run's final manifest; a failure there is written back to both.
  auto close_hdf5 = [&] {
    if (!h5.enabled()) return;
    const bool was_complete = h5.complete();
    h5.finish(w.manifest());
    if (was_complete && !h5.complete()) {
      w.set("hdf5", h5.status());
      json st = ctl.record().stats;
      st["hdf5"] = h5.status();
      ctl.set_stats(st);
    }
  };

  auto finish = [&](JobState st, std::string err) -> JobOutcome {
    commit();
    settle_in_flight();
    if (st == JobState::interrupted) {
      // Stopped by a shutdown: the chunks stay as they are, so the next daemon can continue the run.
      publish_stats();
      devices.end_job_counters();
      w.stop_interrupted(final_keys(err));
      close_hdf5();
      docs.stop(exit_status_of(st), err, w.records());
      return {st, std::move(err)};
    }
    if (!preview_frames.empty() && opt.previews > 0) {
      ImageOptions io;
      io.scale = std::max(1, 112 / std::max(1, std::max(frame_rows, frame_cols)));
      w.add_preview("preview_frames.png", encode_png(render_grid(preview_frames, 4, {}, io)));
      io.scale = std::max(1, 112 / std::max(rows, cols));
      io.cmap = Colormap::gray;
      w.add_preview("preview_inputs.png", encode_png(render_grid(preview_inputs, 4, {}, io)));
    }
    publish_stats();
    devices.end_job_counters();
    w.finish(std::string(to_string(st)), final_keys(err));
    close_hdf5();
    docs.stop(exit_status_of(st), err, w.records());
    return {st, std::move(err)};
  };

  const io::WorkControl work = ctl.work();
  work.report(static_cast<std::int64_t>(w.records()), total, "capture");
  for (std::size_t k = w.records(); k < in.count; ++k) {
    const std::size_t idx = in.start + k;
    const std::uint8_t* img = image_of(in, k);
    cv::Mat pattern;
    try {
      pattern = place_on_slm(img, rows, cols, slm.height_px(), slm.width_px(), slm.bit_depth(), scale);
    } catch (const std::invalid_argument& e) {
      return finish(JobState::failed, e.what());
    }
    const std::string where = "input " + std::to_string(idx) + ": ";
    const std::uint64_t faults_before = cnt.regrabs;
    std::optional<drivers::Frame> frame;
    std::string cause;
    for (int attempt = 1; !frame; ++attempt) {
      if (work.stop_requested()) {
        const bool shutdown = ctl.stop_reason() == StopReason::shutdown;
        return finish(shutdown ? JobState::interrupted : JobState::cancelled,
                      shutdown ? "daemon shut down during the job" : "cancelled by request");
      }
      if (attempt > opt.max_input_attempts) {
        return finish(JobState::failed, where + "no valid frame after " + std::to_string(opt.max_input_attempts) +
                                            " show+grab cycles; last cause: " + cause);
      }
      if (attempt > 1) ++cnt.regrabs;
      auto count_error = [&](const drivers::DeviceError& e) {
        switch (e.code) {
          case drivers::DeviceErrc::timeout: ++cnt.timeouts; break;
          case drivers::DeviceErrc::corrupt_frame: ++cnt.corrupt_frames; break;
          case drivers::DeviceErrc::disconnected: ++cnt.disconnects; break;
          case drivers::DeviceErrc::write_failed: ++cnt.write_failures; break;
          default: break;
        }
        cause = e.message + " [" + std::string(drivers::to_string(e.code)) + "]";
      };
      if (auto err = slm.show(pattern)) {
        ++cnt.show_errors;
        count_error(*err);
        if (!drivers::is_transient(err->code)) return finish(JobState::failed, where + cause);
        continue;
      }
      gate.pattern_settled(monotonic_s());
      const double grab_start = monotonic_s();
      auto fr = cam.grab(opt.grab_timeout);
      const double received = monotonic_s();
      if (!fr) {
        ++cnt.grab_errors;
        count_error(fr.error());
        if (!drivers::is_transient(fr.error().code)) return finish(JobState::failed, where + cause);
        continue;
      }
      // A rejected frame is re-grabbed after showing the pattern again, which waits a full settle more.
      const auto check = gate.check(fr.value(), received, cam.exposure_ms());
      cause = check.reason;
      switch (check.verdict) {
        case drivers::FrameVerdict::stale: ++cnt.out_of_order; continue;
        case drivers::FrameVerdict::gap: cnt.frames_dropped += check.lost; ++cnt.gap_frames; continue;
        case drivers::FrameVerdict::early: ++cnt.early_frames; continue;
        case drivers::FrameVerdict::accepted: break;
      }
      grab_ms.push_back((received - grab_start) * 1e3);
      frame = std::move(fr.value());
    }
    const cv::Mat& f = frame->image;
    if (frame_type < 0) {
      if (f.type() != CV_8UC1 && f.type() != CV_16UC1) {
        return finish(JobState::failed, "camera returned a frame of unsupported type " + std::to_string(f.type()));
      }
      frame_type = f.type();
      frame_rows = f.rows;
      frame_cols = f.cols;
      w.set("frame", {{"dtype", frame_dtype(frame_type)}, {"rows", frame_rows}, {"cols", frame_cols}});
      docs.descriptor(data_keys(in, w.manifest(), devices, frame_dtype(frame_type), frame_rows, frame_cols));
    } else if (f.type() != frame_type || f.rows != frame_rows || f.cols != frame_cols) {
      return finish(JobState::failed, where + "frame size or type changed during the capture (" + std::to_string(f.rows) +
                                          "x" + std::to_string(f.cols) + " " + frame_dtype(f.type()) + ", the run holds " +
                                          std::to_string(frame_rows) + "x" + std::to_string(frame_cols) + " " +
                                          frame_dtype(frame_type) + ")");
    }
    const cv::Mat fc = f.isContinuous() ? f : f.clone();
    pend.frames.append(reinterpret_cast<const char*>(fc.data), fc.total() * fc.elemSize());
    pend.inputs.append(reinterpret_cast<const char*>(img), set.rows * set.cols);
    const std::int64_t i64 = static_cast<std::int64_t>(idx);
    pend.indices.append(reinterpret_cast<const char*>(&i64), sizeof i64);  // little-endian host
    if (in.has_labels) pend.labels.push_back(static_cast<char>(set.labels[idx]));
    ++pend.n;
    ++cnt.frames_stored;
    ++stored_here;
    if (preview_frames.size() < opt.previews) {
      preview_frames.push_back(fc.clone());
      preview_inputs.push_back(cv::Mat(rows, cols, CV_8UC1, const_cast<std::uint8_t*>(img)).clone());
    }
    if (cnt.regrabs != faults_before) publish_stats();
    work.report(static_cast<std::int64_t>(k + 1), total, "capture");
    if (pend.n >= opt.chunk_records || monotonic_s() - chunk_start >= opt.chunk_seconds) commit();
  }
  return finish(JobState::done, "");
}

JobOutcome fresh_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, const fs::path& run_dir,
                         json manifest_base, JobControl& ctl, const std::function<double()>& monotonic_s) {
  const int scale = resolved_scale(in, opt, devices.slm);
  manifest_base["placement"] = placement_json(devices.slm, scale);
  manifest_base["devices"] = devices_json(devices.slm, devices.camera);
  RunWriter w(run_dir, std::move(manifest_base));
  // Inline inputs exist nowhere else: keep them, so that the run can be continued after a restart.
  if (!w.manifest()["params"].contains("dataset")) {
    const auto& set = *in.set;
    const std::size_t n = set.rows * set.cols;
    w.add_source({"source_inputs", "|u1", {in.count, set.rows, set.cols},
                  std::string(reinterpret_cast<const char*>(image_of(in, 0)), in.count * n)});
  }
  return capture_loop(in, opt, devices, w, scale, ctl, monotonic_s, {{"resumes", 0}});
}

// What differs between a run's recorded placement/devices and the current ones ("" = nothing).
std::string bench_difference(const json& manifest, const json& placement, const json& devs) {
  for (const auto& [section, now] : {std::pair<const char*, const json&>{"placement", placement}, {"devices", devs}}) {
    const json was = manifest.value(section, json::object());
    for (const auto& [k, v] : now.items()) {
      if (!was.contains(k) || was[k] != v) {
        return std::string(section) + "." + k + " was " + (was.contains(k) ? was[k].dump() : "absent") + ", now " + v.dump();
      }
    }
  }
  return {};
}

}  // namespace

JobOutcome run_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, const fs::path& run_dir,
                       json manifest_base, JobControl& ctl, const std::function<double()>& monotonic_s) {
  if (auto e = opt.validate(); !e.empty()) return {JobState::failed, e};
  std::lock_guard dev_lock(devices.mutex);
  return fresh_capture(in, opt, devices, run_dir, std::move(manifest_base), ctl, monotonic_s);
}

JobOutcome resume_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, const fs::path& run_dir,
                          JobControl& ctl, const std::function<double()>& monotonic_s) {
  if (auto e = opt.validate(); !e.empty()) return {JobState::failed, e};
  std::lock_guard dev_lock(devices.mutex);
  const JobRecord& rec = ctl.record();
  if (!fs::exists(run_dir / "manifest.json")) {
    // Stopped before its first manifest was written: the directory (if any) holds no record.
    std::error_code ec;
    fs::remove_all(run_dir, ec);
    json base = {{"run_id", rec.run_id}, {"kind", rec.kind}, {"job_id", rec.id}, {"created_s", rec.created_s},
                 {"params", rec.params}};
    return fresh_capture(in, opt, devices, run_dir, std::move(base), ctl, monotonic_s);
  }
  json manifest;
  try {
    manifest = read_manifest(run_dir);
  } catch (const StorageError& e) {
    return {JobState::failed, std::string("cannot resume: ") + e.what()};
  }
  const std::string state = manifest.value("state", "");
  const bool consolidated = manifest.contains("arrays") && !manifest["arrays"].empty();
  if (state != "running" && !(state == "interrupted" && !consolidated)) {
    // The previous process ended the run but stopped before the catalog said so: the manifest decides.
    const auto st = job_state_from_string(state);
    if (!st || !is_final(*st)) return {JobState::failed, "cannot resume: run manifest has state '" + state + "'"};
    ctl.checkpoint(manifest.value("records", std::int64_t{0}));
    if (*st == JobState::interrupted) return {JobState::failed, "cannot resume: the run was already consolidated as interrupted"};
    return {*st, manifest.value("error", std::string())};
  }
  std::optional<RunWriter> w;
  try {
    w.emplace(RunWriter::reopen(run_dir));
  } catch (const StorageError& e) {
    return {JobState::failed, std::string("cannot resume: ") + e.what()};
  }
  auto fail = [&](const std::string& why) -> JobOutcome {
    const std::string err = "cannot resume: " + why;
    w->finish("failed", {{"error", err}});  // keeps every listed record readable
    return {JobState::failed, err};
  };
  const int scale = resolved_scale(in, opt, devices.slm);
  if (auto d = bench_difference(manifest, placement_json(devices.slm, scale), devices_json(devices.slm, devices.camera));
      !d.empty()) {
    return fail("the bench changed since the job started: " + d);
  }
  if (w->records() > in.count) {
    return fail("the run holds " + std::to_string(w->records()) + " records, the job plans " + std::to_string(in.count));
  }
  // The inputs the run already holds must be those the job would show again (dataset files replaced?).
  if (!manifest["chunks"].empty()) {
    const auto& last = manifest["chunks"].back();
    try {
      const auto stored = sim::read_npy(run_dir / last["files"]["inputs"].get<std::string>());
      const std::size_t first = last["first"].get<std::size_t>(), n = in.set->rows * in.set->cols;
      if (stored.bytes.size() != last["count"].get<std::size_t>() * n ||
          std::memcmp(stored.bytes.data(), image_of(in, first), stored.bytes.size()) != 0) {
        return fail("the inputs differ from those the run stored (records " + std::to_string(first) + "..)");
      }
    } catch (const std::exception& e) {
      return fail(std::string("cannot read the stored inputs: ") + e.what());
    }
  }
  json base_stats = rec.stats.is_object() ? rec.stats : json::object();
  base_stats["resumes"] = base_stats.value("resumes", 0) + 1;
  json resumes = manifest.value("resumes", json::array());
  resumes.push_back({{"at_record", w->records()}});
  w->set("resumes", resumes);
  return capture_loop(in, opt, devices, *w, scale, ctl, monotonic_s, base_stats);
}

}  // namespace hilo::controller
