// libFuzzer target: every byte string a client can send, through parse() and handle() against the
// test-double devices, a real catalog and job manager in a temporary directory (no sockets).
//
// Input format: the message's frames separated by the byte 0xFF (never part of UTF-8 JSON), so the
// seeds in fuzz_corpus/ are readable: frame 0 is the request JSON, the rest are binary parts.
// Each input is handled twice, as a read_only and as a control client. Checked besides "no crash, no
// sanitizer report": the reply is a JSON object with the request's id and a boolean ok, an error reply
// carries a known code, a read_only client is never let run a control command, and the serialised
// reply's frame 0 parses again. A job an input started is cancelled and waited for, so inputs stay
// independent and the disk stays small.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "harness.hpp"
#include "hilo/sim/npy.hpp"

namespace {

using hilo::controller::ErrorCode;
using hilo::controller::Role;
using hilo::controller::testing::Harness;
using nlohmann::json;

[[noreturn]] void fail(const char* what, const json& body) {
  std::fprintf(stderr, "fuzz_protocol: %s: %s\n", what, body.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  std::abort();
}

Harness& harness() {
  static Harness* h = [] {
    auto* p = new Harness("fuzz");  // leaked on purpose: jobs may still be stopping at exit
    p->ctx->limits.max_jobs = 2;
    p->ctx->limits.max_reply_bytes = 1 << 20;
    // A known .npy in the data directory, so that inputs_npy seeds reach a successful capture.
    hilo::sim::NpyArray a;
    a.dtype = hilo::sim::Dtype::u1;
    a.shape = {2, 8, 8};
    a.bytes.assign(2 * 8 * 8, std::byte{100});
    hilo::sim::write_npy(p->dir / "inputs.npy", a);
    std::atexit([] {
      harness().jobs->shutdown();
      std::filesystem::remove_all(harness().dir);
    });
    return p;
  }();
  return *h;
}

const std::set<std::string>& known_codes() {
  static const std::set<std::string> s = [] {
    std::set<std::string> out;
    for (int c = 0; c <= static_cast<int>(ErrorCode::too_many_jobs); ++c) {
      out.insert(std::string(hilo::controller::to_string(static_cast<ErrorCode>(c))));
    }
    return out;
  }();
  return s;
}

void check(const hilo::controller::Reply& r, Role role, const std::vector<std::string>& frames) {
  const json& b = r.body;
  if (!b.is_object() || !b.contains("ok") || !b["ok"].is_boolean() || !b.contains("id")) fail("malformed reply", b);
  if (!b["ok"].get<bool>()) {
    if (!b.contains("error") || !b["error"].contains("code") || !b["error"]["code"].is_string()) fail("error without code", b);
    if (!known_codes().count(b["error"]["code"].get<std::string>())) fail("unknown error code", b);
  }
  const auto wire = hilo::controller::serialize(r);
  if (wire.empty() || json::parse(wire[0], nullptr, false).is_discarded()) fail("serialised reply is not JSON", b);
  if (role == Role::read_only && b["ok"].get<bool>()) {
    auto p = hilo::controller::parse(frames, harness().ctx->limits);
    if (auto* req = std::get_if<hilo::controller::Request>(&p);
        req && hilo::controller::required_role(req->cmd) == Role::control) {
      fail("read_only client ran a control command", b);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> frames(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0xFF) {
      frames.emplace_back();
    } else {
      frames.back().push_back(static_cast<char>(data[i]));
    }
  }
  Harness& h = harness();
  for (Role role : {Role::read_only, Role::control}) {
    const auto reply = hilo::controller::handle_frames(frames, *h.ctx, role);
    check(reply, role, frames);
  }
  if (h.jobs->busy()) {
    for (const auto& j : h.jobs->list(16)) {
      if (j.state == hilo::controller::JobState::queued || j.state == hilo::controller::JobState::running) {
        h.jobs->cancel(j.id);
      }
    }
    h.jobs->wait_idle();
  }
  return 0;
}
