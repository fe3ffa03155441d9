// Unit tests for the domain message (include/model/postino/message.h): the queue
// id's text form and its inverse, and the even share of a price that a
// message without per-recipient unit prices gives each recipient. Values
// only, owned by each test.
#include <gtest/gtest.h>

#include "postino/message.h"

namespace postino {
namespace {

TEST(queue_id, formats_node_shard_and_sequence_in_upper_case_hex) {
  EXPECT_EQ((queue_id{0, 0, 0}.format()), "0000000000000000");
  EXPECT_EQ((queue_id{1, 0x1F, 0xABCDEF}.format()), "011F000000ABCDEF");
  EXPECT_EQ((queue_id{255, 255, 0xFFFFFFFFFFFFull}.format()), "FFFFFFFFFFFFFFFF");
  EXPECT_EQ((queue_id{2, 3, 0x123456789ABCull}.format().size()), 16u);
  EXPECT_EQ((queue_id{2, 3, 0x1000000000000ull}.format()), "02031000000000000") << "past 48 bits it grows";
  EXPECT_EQ((queue_id{2, 3, ~0ull}.to_text().view()), "0203FFFFFFFFFFFFFFFF");
}

TEST(queue_id, parses_what_it_formats_and_nothing_else) {
  for (const queue_id id : {queue_id{0, 0, 0}, queue_id{1, 0x1F, 0xABCDEF}, queue_id{9, 200, ~0ull}})
    EXPECT_EQ(queue_id::parse(id.format()), id);
  EXPECT_EQ(queue_id::parse("011f000000abcdef"), (queue_id{1, 0x1F, 0xABCDEF})) << "either case";
  EXPECT_FALSE(queue_id::parse(""));
  EXPECT_FALSE(queue_id::parse("011F000000ABCDE")) << "too short";
  EXPECT_FALSE(queue_id::parse("011F000000ABCDEG"));
  EXPECT_FALSE(queue_id::parse("01+F000000ABCDEF"));
  EXPECT_FALSE(queue_id::parse("011F+00000ABCDEF"));
  EXPECT_FALSE(queue_id::parse("0203FFFFFFFFFFFFFFFFF")) << "past 64 bits";
}

TEST(message, unit_prices_default_to_the_even_share) {
  message m;
  EXPECT_EQ(m.even_unit_price(), 0) << "no recipients";
  m.recipients = {"+393331234567", "+393401234567"};
  m.segments = 3;
  m.price = 12;
  EXPECT_EQ(m.unit_price(0), 2);
  EXPECT_EQ(m.unit_price(1), 2);
  m.unit_prices = {1, 3};
  EXPECT_EQ(m.unit_price(0), 1);
  EXPECT_EQ(m.unit_price(1), 3);
  m.unit_prices = {5};  // not parallel to the recipients: ignored
  EXPECT_EQ(m.unit_price(0), 2);
  m.unit_prices.clear();
  m.is_mms = true;  // one charge per recipient
  EXPECT_EQ(m.unit_price(1), 6);
}

}  // namespace
}  // namespace postino
