#pragma once
// hiloctl's side of the protocol (hiloctl.cpp): a DEALER client, reply display, and binary parts to and
// from .npy arrays. Internal to the hiloctl executable.
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "hilo/controller/protocol.hpp"
#include "hilo/sim/npy.hpp"

namespace hiloctl {

using nlohmann::json;

struct Client {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  int timeout_ms;
  int next_id = 1;

  Client(const std::string& ep, int timeout) : timeout_ms(timeout) {
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvtimeo, timeout);
    sock.connect(ep);
  }

  // Returns the reply frames (JSON first, then the binary parts); throws on timeout.
  std::vector<zmq::message_t> call(const std::string& cmd, const json& args, std::vector<std::string> parts = {}) {
    const json req = {{"id", next_id++}, {"cmd", cmd}, {"args", args}, {"v", hilo::controller::kProtocolVersion}};
    std::vector<zmq::message_t> out;
    out.emplace_back();
    out.emplace_back(req.dump());
    for (auto& p : parts) out.emplace_back(p.data(), p.size());
    zmq::send_multipart(sock, out);
    std::vector<zmq::message_t> in;
    if (!zmq::recv_multipart(sock, std::back_inserter(in))) {
      throw std::runtime_error("no reply within " + std::to_string(timeout_ms) + " ms (is hilod running?)");
    }
    if (in.size() < 2) throw std::runtime_error("malformed reply");
    in.erase(in.begin());  // delimiter
    return in;
  }
};

inline json body_of(const std::vector<zmq::message_t>& r) { return json::parse(r[0].to_string()); }

// A .npy file as binary part `part`: its descriptor and bytes (C order, as stored).
inline std::pair<json, std::string> npy_part(const std::string& path, int part) {
  const auto a = hilo::sim::read_npy(path);
  return {{{"dtype", hilo::sim::dtype_descr(a.dtype)}, {"shape", a.shape}, {"part", part}},
          std::string(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size())};
}

// Prints the result (or the error, exit code 1) as JSON.
inline int show(const std::vector<zmq::message_t>& r) {
  const json j = body_of(r);
  if (j["ok"] != true) {
    std::cerr << "error " << j["error"]["code"].get<std::string>() << ": " << j["error"]["message"].get<std::string>() << "\n";
    return 1;
  }
  std::cout << j["result"].dump(2) << "\n";
  return 0;
}

inline std::optional<hilo::sim::Dtype> dtype_of(const std::string& descr) {
  using D = hilo::sim::Dtype;
  for (D d : {D::f4, D::f8, D::c8, D::c16, D::u1, D::u2, D::u4, D::i4, D::i8}) {
    if (hilo::sim::dtype_descr(d) == descr) return d;
  }
  return std::nullopt;
}

// The array a reply descriptor {"dtype", "shape", "part"} points at.
inline hilo::sim::NpyArray array_of(const std::vector<zmq::message_t>& r, const json& desc) {
  const auto d = dtype_of(desc.at("dtype").get<std::string>());
  if (!d) throw std::runtime_error("reply carries dtype " + desc["dtype"].dump() + ", which hiloctl cannot store");
  const auto& part = r.at(desc.at("part").get<std::size_t>());
  hilo::sim::NpyArray a;
  a.dtype = *d;
  a.shape = desc.at("shape").get<std::vector<std::size_t>>();
  a.bytes.resize(part.size());
  std::memcpy(a.bytes.data(), part.data(), part.size());
  return a;
}

}  // namespace hiloctl
