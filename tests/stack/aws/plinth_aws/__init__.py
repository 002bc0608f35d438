"""A stricter AWS for Plinth's tests: moto's server, in-process, behind a WSGI layer that adds
call counts, seeded faults, AWS's delete guards and duplicate refusals, and pending states."""
