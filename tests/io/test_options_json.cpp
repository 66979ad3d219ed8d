// Options structs ⇄ JSON: strict reading against the struct's own JSON form.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hilo/io/options_json.hpp"

namespace demo {
struct Inner {
  double gain = 1.5;
  bool enabled = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Inner, gain, enabled)
struct Options {
  int epochs = 3;
  std::uint64_t seed = 7;
  std::string kind = "adam";
  std::vector<int> sizes{1, 2};
  Inner inner{};
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Options, epochs, seed, kind, sizes, inner)
struct Ranged {
  int epochs = 3;
  [[nodiscard]] std::string validate() const {
    return epochs >= 1 ? "" : "opts.epochs must be >= 1, got " + std::to_string(epochs);
  }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Ranged, epochs)
}  // namespace demo

using hilo::io::read_options;
using nlohmann::json;

namespace {
std::string error_of(const json& j) {
  try {
    (void)read_options<demo::Options>(j, "opts");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}
}  // namespace

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(hilo::io::edit_distance("", ""), 0u);
  EXPECT_EQ(hilo::io::edit_distance("abc", ""), 3u);
  EXPECT_EQ(hilo::io::edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(hilo::io::edit_distance("ntk_beat", "ntk_beta"), 2u);
  EXPECT_EQ(hilo::io::closest_name("epoch", {"epochs", "seed"}), "epochs");
  EXPECT_EQ(hilo::io::closest_name("banana", {"epochs", "seed"}), "");
}

TEST(ReadOptions, MissingKeysKeepTheGivenDefaults) {
  demo::Options d;
  d.epochs = 10;
  d.inner.gain = 4.0;
  const auto o = read_options<demo::Options>(json{{"kind", "sgd"}, {"inner", {{"enabled", true}}}}, "opts", d);
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.kind, "sgd");
  EXPECT_EQ(o.inner.gain, 4.0);
  EXPECT_TRUE(o.inner.enabled);
  EXPECT_EQ(o.sizes, (std::vector<int>{1, 2}));
  // A list replaces the default list whole.
  EXPECT_EQ(read_options<demo::Options>(json{{"sizes", {5}}}, "opts").sizes, std::vector<int>{5});
  // What is read writes back as the merged form, and reads again to the same.
  const json stored = o;
  EXPECT_EQ(json(read_options<demo::Options>(stored, "opts")), stored);
}

TEST(ReadOptions, UnknownKeysAndWrongTypesNameThePath) {
  EXPECT_EQ(error_of({{"epoch", 3}}), "opts: unknown key 'epoch'; did you mean 'epochs'?");
  EXPECT_EQ(error_of({{"inner", {{"gian", 2.0}}}}), "opts.inner: unknown key 'gian'; did you mean 'gain'?");
  EXPECT_EQ(error_of({{"colour", 1}}), "opts: unknown key 'colour'");
  EXPECT_EQ(error_of({{"epochs", 2.5}}), "opts.epochs must be an integer, got a number (2.5)");
  EXPECT_EQ(error_of({{"epochs", "3"}}), "opts.epochs must be an integer, got a string (\"3\")");
  EXPECT_EQ(error_of({{"seed", -1}}), "opts.seed must be a non-negative integer, got an integer (-1)");
  EXPECT_EQ(error_of({{"inner", {{"enabled", 1}}}}), "opts.inner.enabled must be true or false, got an integer (1)");
  EXPECT_EQ(error_of({{"inner", 3}}), "opts.inner must be a mapping, got an integer (3)");
  EXPECT_EQ(error_of({{"sizes", 3}}), "opts.sizes must be a list, got an integer (3)");
  EXPECT_EQ(error_of(json::array()), "opts must be a mapping, got a list");
  EXPECT_EQ(error_of({{"kind", nullptr}}), "opts.kind must be a string, got nothing (null)");
  // A list of the wrong element type is caught when the struct is read.
  EXPECT_NE(error_of({{"sizes", {"a"}}}).find("opts: "), std::string::npos);
  // Integers where a number is expected are numbers.
  EXPECT_EQ(read_options<demo::Options>(json{{"inner", {{"gain", 2}}}}, "opts").inner.gain, 2.0);
}

TEST(ValidateConvention, FirstBrokenRuleWinsAndEmptyMeansValid) {
  EXPECT_EQ(hilo::io::first_broken({}), "");
  EXPECT_EQ(hilo::io::first_broken({"", ""}), "");
  EXPECT_EQ(hilo::io::first_broken({"", "b must be > 0", "c must be > 0"}), "b must be > 0");
  EXPECT_NO_THROW(hilo::io::require_valid(""));
  try {
    hilo::io::require_valid("b must be > 0", "pipeline: ");
    FAIL() << "a broken rule was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "pipeline: b must be > 0");
  }
}

TEST(ValidateConvention, ReadValidOptionsChecksKeysThenValues) {
  EXPECT_EQ(hilo::io::read_valid_options<demo::Ranged>(json{{"epochs", 5}}, "opts").epochs, 5);
  try {
    (void)hilo::io::read_valid_options<demo::Ranged>(json{{"epochs", 0}}, "opts");
    FAIL() << "epochs 0 was accepted";
  } catch (const hilo::io::OptionsError& e) {
    EXPECT_STREQ(e.what(), "opts.epochs must be >= 1, got 0");
    EXPECT_EQ(e.key(), "opts");
  }
  EXPECT_THROW((void)hilo::io::read_valid_options<demo::Ranged>(json{{"epoch", 5}}, "opts"), hilo::io::OptionsError);
}
