// Actors log warnings that some tests provoke on purpose; show only errors unless asked.
process.env["POCKET_LOG"] ??= "error";
