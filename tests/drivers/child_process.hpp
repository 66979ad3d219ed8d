#pragma once
// Starts and stops the real peer processes of the driver tests (Xvfb, Aravis' fake GigE Vision camera).
// The child gets PR_SET_PDEATHSIG = SIGKILL, so it dies with the test process even when the test
// crashes; the destructor kills (SIGTERM, then SIGKILL) and reaps it otherwise.
#include <csignal>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hilo::drivers::testing {

class ChildProcess {
 public:
  // argv[0] is looked up in PATH. `keep_fd` (>= 0) stays open in the child (for Xvfb -displayfd).
  ChildProcess(const std::vector<std::string>& argv, int keep_fd = -1) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      for (int fd = 3; fd < 256; ++fd)
        if (fd != keep_fd) ::close(fd);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Kills the child with `sig` and reaps it.
  void kill(int sig = SIGKILL) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {  // up to 2 s for a clean exit
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      ::poll(nullptr, 0, 10);
    }
    kill(SIGKILL);
  }

 private:
  pid_t pid_ = -1;
};

// Xvfb on a free display number that the server picks itself (-displayfd).
class Xvfb {
 public:
  explicit Xvfb(const std::string& screen_spec = "1024x768x24") {
    int fds[2];
    if (::pipe(fds) != 0) return;
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"Xvfb", "-displayfd", std::to_string(fds[1]), "-screen", "0", screen_spec,
                                 "-nolisten", "tcp", "-noreset"},
        fds[1]);
    ::close(fds[1]);
    std::string number;
    pollfd p{fds[0], POLLIN, 0};
    while (::poll(&p, 1, 10000) > 0) {  // Xvfb writes "N\n" once it accepts connections
      char c;
      if (::read(fds[0], &c, 1) != 1 || c == '\n') break;
      number += c;
    }
    ::close(fds[0]);
    if (!number.empty()) display_ = ":" + number;
  }
  const std::string& display() const { return display_; }  // empty when Xvfb did not start
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  std::string display_;
};

}  // namespace hilo::drivers::testing
