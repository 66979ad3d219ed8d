// The live view's page (live_view.hpp): one HTML document with its style and script, no external
// resources. It reads /api/state once, then follows /events (server-sent events); every request carries
// the page's own ?token= when it was opened with one.
namespace hilo::controller {

extern const char* const kLiveViewPage;
const char* const kLiveViewPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hilod live view</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 12px; background: #fafafa; color: #222; }
h1 { font-size: 18px; margin: 0 0 8px 0; }
h2 { font-size: 15px; margin: 0 0 6px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px; }
img.pv { width: 256px; height: 256px; image-rendering: pixelated; background: #000; display: block; }
img.fig { max-width: 100%; display: block; margin-top: 6px; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid #ccc; padding: 2px 5px; text-align: right; }
th { background: #eee; }
#bar { height: 14px; background: #eee; border-radius: 3px; overflow: hidden; }
#bar > div { height: 100%; width: 0; background: #2a7; }
.muted { color: #777; }
.scroll { overflow-x: auto; max-width: 100%; }
#conn.ok { color: #2a7; } #conn.bad { color: #c33; }
</style>
</head>
<body>
<h1>hilod live view <span id="conn" class="bad">connecting</span> <span class="muted">(read-only)</span></h1>
<div class="grid">
  <div class="card"><h2>Camera frame</h2>
    <img id="frame" class="pv" alt="latest camera frame" src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">
    <canvas id="hist" width="256" height="60"></canvas>
    <div id="framestats" class="muted">no frame yet</div></div>
  <div class="card"><h2>Input SLM</h2><img id="input_slm" class="pv" alt="input SLM pattern" src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">
    <div id="input_slm_info" class="muted">no pattern yet</div></div>
  <div class="card"><h2>Element SLM</h2><img id="element_slm" class="pv" alt="element SLM pattern" src="data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==">
    <div id="element_slm_info" class="muted">no pattern yet</div></div>
  <div class="card"><h2>Job</h2>
    <div id="job">no job yet</div>
    <div id="bar"><div></div></div>
    <div>progress <span id="progress">0 %</span>, stage <span id="stage">-</span></div>
    <h2 style="margin-top:10px">Devices</h2><table id="devices"></table>
    <div id="heartbeat" class="muted"></div></div>
  <div class="card"><h2>Drift readings</h2><table id="drift"><tr><td class="muted">none yet</td></tr></table></div>
  <div class="card" style="grid-column: 1 / -1"><h2>Last report <span id="report_run" class="muted"></span></h2>
    <div id="report_box" class="scroll"><table id="report"><tr><td class="muted">no pipeline report yet</td></tr></table></div>
    <div id="figures"></div></div>
</div>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
function url(path, extra) {
  const q = new URLSearchParams(extra || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return path + (s ? "?" + s : "");
}
function el(tag, text) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; }
function fillTable(t, rows, header) {
  t.replaceChildren();
  rows.forEach((r, i) => { const tr = el("tr"); r.forEach(c => tr.appendChild(el(i === 0 && header ? "th" : "td", String(c)))); t.appendChild(tr); });
}
function preview(p) {
  if (!p || !p.version) return;
  const img = document.getElementById(p.source);
  img.src = url("/preview/" + p.source + ".png", {v: p.version});
  img.dataset.version = p.version;
  if (p.source === "frame") {
    document.getElementById("framestats").textContent =
      `#${p.version}  ${p.rows}x${p.cols}, ${p.bit_depth} bit, min ${p.min} max ${p.max} mean ${p.mean.toFixed(1)}, saturated ${p.saturated}`;
    const c = document.getElementById("hist"), g = c.getContext("2d"), h = p.histogram;
    g.clearRect(0, 0, c.width, c.height);
    const top = Math.max(1, ...h.map(v => Math.log1p(v)));
    g.fillStyle = "#357";
    h.forEach((v, i) => { const bh = c.height * Math.log1p(v) / top; g.fillRect(i * c.width / h.length, c.height - bh, c.width / h.length - 1, bh); });
  } else {
    document.getElementById(p.source + "_info").textContent = `#${p.version}  ${p.rows}x${p.cols}, ${p.bit_depth} bit`;
  }
}
let job = null;
function showJob(j) {
  if (!j) return;
  job = Object.assign(job && job.job_id === j.job_id ? job : {}, j);
  const frac = job.total > 0 ? job.done / job.total : (job.state === "done" ? 1 : 0);
  const pct = Math.round(100 * frac);
  document.getElementById("job").textContent = `job ${job.job_id} ${job.kind || ""} ${job.state || "running"} — run ${job.run_id || ""}`;
  document.getElementById("progress").textContent = pct + " %";
  document.querySelector("#bar > div").style.width = pct + "%";
  const st = job.stats && job.stats.stage;
  if (st) document.getElementById("stage").textContent = st;
}
function showDevices(d) {
  if (!d) return;
  const rows = [["device", "name", "state"]];
  for (const k of ["slm", "element_slm", "camera"]) if (d[k]) rows.push([k, d[k].name, d[k].state]);
  if (d.jobs_active !== undefined) rows.push(["jobs active", "", String(d.jobs_active)]);
  fillTable(document.getElementById("devices"), rows, true);
}
const drift = [];
function showDrift(list) {
  if (!list || !list.length) return;
  const num = (v, n) => v === undefined || v === null ? "" : Number(v).toFixed(n);
  const rows = [["time", "profile", "images", "displacement px", "gain change", "action"]];
  list.slice(-10).forEach(d => rows.push([new Date(1000 * (d.time_s || 0)).toLocaleTimeString(), d.profile || "",
    d.measured_images ?? "", num(d.displacement_px, 2), num(d.gain_change, 3), d.action || ""]));
  fillTable(document.getElementById("drift"), rows, true);
}
function showReport(r) {
  if (!r) return;
  document.getElementById("report_run").textContent = r.run_id;
  fillTable(document.getElementById("report"), r.rows, true);
  const f = document.getElementById("figures");
  f.replaceChildren();
  r.figures.forEach(name => { const i = el("img"); i.className = "fig"; i.alt = name; i.src = url("/report/" + r.run_id + "/" + name); f.appendChild(i); });
}
function showState(s) {
  Object.values(s.preview || {}).forEach(preview);
  showJob(s.job); showDevices(s.devices); drift.splice(0, drift.length, ...(s.drift || [])); showDrift(drift); showReport(s.report);
}
const es = new EventSource(url("/events"));
es.onopen = () => { const c = document.getElementById("conn"); c.textContent = "live"; c.className = "ok"; };
es.onerror = () => { const c = document.getElementById("conn"); c.textContent = "reconnecting"; c.className = "bad"; };
es.addEventListener("state", e => showState(JSON.parse(e.data)));
es.addEventListener("preview", e => preview(JSON.parse(e.data)));
es.addEventListener("job.state", e => showJob(JSON.parse(e.data)));
es.addEventListener("job.progress", e => showJob(JSON.parse(e.data)));
es.addEventListener("devices", e => showDevices(JSON.parse(e.data)));
es.addEventListener("bench.drift", e => { drift.push(JSON.parse(e.data)); showDrift(drift); });
es.addEventListener("report", e => showReport(JSON.parse(e.data)));
es.addEventListener("heartbeat", e => { const h = JSON.parse(e.data);
  document.getElementById("heartbeat").textContent = `daemon up ${h.uptime_s.toFixed(0)} s, protocol ${h.protocol_version}`; });
</script>
</body>
</html>
)HTML";

}  // namespace hilo::controller
