"""
DWARF
=====

One module per DWARF structure, named as in the spec and in pyelftools' ``elftools/dwarf/``:
``index`` (the face: functions, inline frames and lines for an address, compile units found
by ``.debug_aranges`` or ranges), ``inline`` (``DW_TAG_inlined_subroutine`` chains and names),
``lines``/``lineprogram`` (DWARF 5 §6.2), ``expr`` (the one DWARF expression evaluator, §2.5,
used by CFI and by location descriptions), ``limits`` (the bounds of an analysis) and ``cache``.
The DWARF itself is read by our own ``dwarfinfo``/``compileunit``/``die`` (pyelftools' API,
on the abbreviation-driven reader of ``abbrev``/``dies``), ``rangelists`` and
``locationlists``; pyelftools reads only the files those do not (other than ELF64
little-endian) and the line programs ``lineprogram`` gives up on.
"""
