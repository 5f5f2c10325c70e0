"""What a run kept and lost, entry by entry (``tally``), and the page that shows it
(``charts``, ``page``): ``report.html`` and its charts as PNG files."""
