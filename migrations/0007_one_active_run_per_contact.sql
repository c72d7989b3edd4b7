-- One active run per agent and contact, decided in the write itself: two triggers racing for
-- the same contact cannot both pass the eligibility read and both write a run for it.
CREATE TRIGGER `run_contacts_one_active_run` BEFORE INSERT ON `run_contacts`
WHEN EXISTS (
  SELECT 1 FROM `run_contacts` `rc` JOIN `runs` `r` ON `r`.`id` = `rc`.`run_id`
  WHERE `rc`.`contact_id` = NEW.`contact_id` AND `rc`.`run_id` <> NEW.`run_id`
    AND `r`.`status` IN ('queued', 'running', 'awaiting_approval')
    AND `r`.`agent_id` = (SELECT `agent_id` FROM `runs` WHERE `id` = NEW.`run_id`)
)
BEGIN
  SELECT RAISE(ABORT, 'in_active_run');
END;
