-- Reaching a contact (an email or LinkedIn delivery) marks it contacted in the same statement
-- that records the delivery: one write per send, and the two can never disagree.
CREATE TRIGGER `deliveries_mark_contacted` AFTER INSERT ON `deliveries`
WHEN NEW.`channel` IN ('email', 'linkedin')
BEGIN
  UPDATE `contacts` SET `last_contacted_at` = NEW.`created_at` WHERE `id` = NEW.`contact_id`;
END;
