-- One database per service (DESIGN §1: a service owns its tables, no service reads another's
-- database). Runs once, when the postgres container initialises an empty data volume; the
-- services create their own tables with their migrations.
CREATE DATABASE lapor_intake OWNER lapor;
CREATE DATABASE lapor_routing OWNER lapor;
CREATE DATABASE lapor_notify OWNER lapor;
