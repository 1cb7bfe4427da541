"""Reports per management unit (S318–S320): periods cut in the unit's time zone, figures
added up in SQL, JSON and CSV."""
