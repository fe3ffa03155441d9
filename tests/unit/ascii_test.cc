// The ASCII helpers every part shares (include/model/postino/ascii.h): case-blind
// comparison that leaves bytes above 0x7F alone, the two trims, digits,
// join and the case mappings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "postino/ascii.h"

namespace postino {
namespace {

TEST(ascii, iequals_ignores_ascii_case_only) {
  EXPECT_TRUE(iequals("Content-Type", "content-TYPE"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("SIZE", "SIZ"));
  EXPECT_FALSE(iequals("a", "b"));
  // No locale: a Latin-1 or UTF-8 byte only equals itself.
  EXPECT_FALSE(iequals("\xc9", "\xe9"));
  EXPECT_TRUE(iequals("\xc3\xa9", "\xc3\xa9"));
  EXPECT_FALSE(iequals("@", "`"));  // 0x40 and 0x60 differ by the case bit but are not letters
}

TEST(ascii, istarts_with) {
  EXPECT_TRUE(istarts_with("FROM:<a>", "from:"));
  EXPECT_TRUE(istarts_with("x", ""));
  EXPECT_FALSE(istarts_with("FR", "from:"));
  EXPECT_FALSE(istarts_with("TO:<a>", "from:"));
}

TEST(ascii, trims) {
  EXPECT_EQ(trim(" \t\r\nabc \r\n"), "abc");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("a b"), "a b");
  EXPECT_EQ(trim("xxaxx", "x"), "a");
  // trim_blanks keeps an LF: in a header it is structure, not padding.
  EXPECT_EQ(trim_blanks(" \tvalue\r"), "value");
  EXPECT_EQ(trim_blanks("\nvalue\n"), "\nvalue\n");
}

TEST(ascii, digits) {
  EXPECT_TRUE(is_digit('0'));
  EXPECT_TRUE(is_digit('9'));
  EXPECT_FALSE(is_digit('a'));
  EXPECT_TRUE(all_digits("0123456789"));
  EXPECT_FALSE(all_digits(""));
  EXPECT_FALSE(all_digits("+39"));
  EXPECT_FALSE(all_digits("12 3"));
}

TEST(ascii, join_and_case_mapping) {
  EXPECT_EQ(join({}, ","), "");
  EXPECT_EQ(join({"a"}, ","), "a");
  EXPECT_EQ(join({"a", "b", "c"}, ","), "a,b,c");
  EXPECT_EQ(join({"+39333", "+39347"}, "\n"), "+39333\n+39347");
  EXPECT_EQ(to_lower("Bearer XYZ"), "bearer xyz");
  EXPECT_EQ(to_upper("delivrd \xe9"), "DELIVRD \xe9");
}

}  // namespace
}  // namespace postino
