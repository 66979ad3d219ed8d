#include "hilo/controller/capture.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <stdexcept>
#include <variant>

#include <opencv2/imgcodecs.hpp>

#include "capture_content.hpp"
#include "capture_detail.hpp"
#include "capture_hdf5.hpp"
#include "hilo/controller/run_documents.hpp"
#include "hilo/controller/storage.hpp"
#include "hilo/drivers/gated_grab.hpp"
#include "hilo/drivers/placed_slm.hpp"
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
  return content.validate();
}

// -------------------------------------------------------------------------------------------- capture

namespace capture_detail {

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
  return opt.scale == 0 ? drivers::fitting_scale(static_cast<int>(in.set->rows), static_cast<int>(in.set->cols),
                                                 slm.height_px(), slm.width_px())
                        : opt.scale;
}

const std::uint8_t* image_of(const CaptureInputs& in, std::size_t k) {
  const auto& set = *in.set;
  return set.images.data() + (in.start + k) * set.rows * set.cols;
}
// Input k as a CV_8UC1 matrix over the set's bytes (no copy).
cv::Mat input_mat(const CaptureInputs& in, std::size_t k) {
  return cv::Mat(static_cast<int>(in.set->rows), static_cast<int>(in.set->cols), CV_8UC1,
                 const_cast<std::uint8_t*>(image_of(in, k)));
}

// A dataset parameter for people: a built-in name, or a file source with its file or folder.
std::string dataset_label(const json& d) {
  if (d.is_string()) return d.get<std::string>();
  const std::string where = d.value("dir", std::string());
  return d.value("name", std::string("files")) + ":" + (where.empty() ? d.value("images", std::string()) : where);
}

// run.descriptor's data_keys: per-record dtype, shape, units and source of each stored array.
json data_keys(const CaptureInputs& in, const json& manifest, const Devices& devices, const std::string& frame_dtype_str,
               int frame_rows, int frame_cols) {
  const auto& set = *in.set;
  const json& p = manifest["params"];
  const std::string inputs_from =
      p.contains("dataset") ? "dataset:" + dataset_label(p["dataset"]) + "/" + p.value("split", std::string("train"))
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
  CaptureContent content = capture_content(in, opt, devices);

  CaptureCounters cnt;
  const drivers::RetryCounters slm_base = devices.slm_retries ? *devices.slm_retries : drivers::RetryCounters{};
  const drivers::RetryCounters cam_base = devices.camera_retries ? *devices.camera_retries : drivers::RetryCounters{};
  // Every frame: show, settle, grab, frame gate (counter and device timestamp against the settle), then
  // the content check as the grabber's judge; rejected frames are re-shown and re-grabbed.
  drivers::GatedGrabOptions grab_opt;
  grab_opt.max_attempts = opt.max_input_attempts;
  grab_opt.grab_timeout = opt.grab_timeout;
  drivers::GatedGrabber grabber(slm, cam, grab_opt, monotonic_s);
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
    static_cast<drivers::GrabCounters&>(cnt) = grabber.counters();
    cnt.slm_driver = retry_delta(devices.slm_retries, slm_base);
    cnt.camera_driver = retry_delta(devices.camera_retries, cam_base);
    json j = base_stats;
    j["capture"] = cnt.to_json();
    j["content_check"] = content.status;
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
  // Shows `pattern` and grabs until a frame passes the frame gate and `judge` (none: accepted).
  auto acquire = [&](const cv::Mat& pattern, const std::string& where,
                     const drivers::FrameJudge& judge) -> std::variant<drivers::Frame, JobOutcome> {
    auto got = grabber.show_and_grab(pattern, {[&] { return work.stop_requested(); }, judge});
    if (auto* f = std::get_if<drivers::GrabFailure>(&got)) {
      if (!f->stopped) return finish(JobState::failed, where + f->error.message);
      const bool shutdown = ctl.stop_reason() == StopReason::shutdown;
      return finish(shutdown ? JobState::interrupted : JobState::cancelled,
                    shutdown ? "daemon shut down during the job" : "cancelled by request");
    }
    auto& g = std::get<drivers::GatedFrame>(got);
    grab_ms.push_back(g.grab_ms);
    return std::move(g.frame);
  };

  // The content check's chain starts from frames of the dark input (calibration/content_gate.hpp).
  if (content.gate) {
    content.gate->set_camera(cam.exposure_ms(), cam.gain_db());
    cv::Mat dark;
    try {
      dark = drivers::place_pattern(cv::Mat::zeros(rows, cols, CV_8UC1), slm.height_px(), slm.width_px(), slm.bit_depth(), scale);
    } catch (const std::invalid_argument& e) {
      return finish(JobState::failed, e.what());
    }
    std::vector<cv::Mat> refs;
    while (refs.size() < 3) {
      auto r = acquire(dark, "content check, dark reference: ", {});
      if (auto* o = std::get_if<JobOutcome>(&r)) return std::move(*o);
      refs.push_back(std::get<drivers::Frame>(r).image.clone());
    }
    std::string why;
    try {
      why = content.gate->set_reference(refs);
    } catch (const std::invalid_argument& e) {
      why = e.what();
    }
    if (!why.empty()) {
      content.off(why);
    } else {
      content.status["reference_frames"] = refs.size();
      content.status["dark_noise_counts"] = content.gate->dark_noise_counts();
    }
  }

  for (std::size_t k = w.records(); k < in.count; ++k) {
    const std::size_t idx = in.start + k;
    const std::uint8_t* img = image_of(in, k);
    cv::Mat pattern;
    try {
      pattern = drivers::place_pattern(input_mat(in, k), slm.height_px(), slm.width_px(), slm.bit_depth(), scale);
    } catch (const std::invalid_argument& e) {
      return finish(JobState::failed, e.what());
    }
    const std::string where = "input " + std::to_string(idx) + ": ";
    const std::uint64_t faults_before = grabber.counters().regrabs;
    drivers::FrameJudge judge_content;
    if (content.gate)
      judge_content = [&](const drivers::Frame& fr) { return content.gate->judge(fr.image, input_mat(in, k), cnt); };
    auto got = acquire(pattern, where, judge_content);
    if (auto* o = std::get_if<JobOutcome>(&got)) return std::move(*o);
    std::optional<drivers::Frame> frame = std::move(std::get<drivers::Frame>(got));
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
    if (grabber.counters().regrabs != faults_before) publish_stats();
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

}  // namespace capture_detail

using namespace capture_detail;

JobOutcome run_capture(const CaptureInputs& in, const CaptureOptions& opt, Devices& devices, const fs::path& run_dir,
                       json manifest_base, JobControl& ctl, const std::function<double()>& monotonic_s) {
  if (auto e = opt.validate(); !e.empty()) return {JobState::failed, e};
  std::lock_guard dev_lock(devices.mutex);
  return fresh_capture(in, opt, devices, run_dir, std::move(manifest_base), ctl, monotonic_s);
}

}  // namespace hilo::controller
