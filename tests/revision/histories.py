"""Revision histories written out as literals, shared by the graph, target and plan tests.

Each history is a function returning a fresh graph, so a test may not
disturb another. The shapes are drawn in each docstring, newest at the top.
"""

from __future__ import annotations

from asyncmigrate.revision import Revision, RevisionGraph


def graph(*revisions: Revision) -> RevisionGraph:
    """Build a graph from revisions in the given (file) order."""
    return RevisionGraph(revisions)


def linear() -> RevisionGraph:
    """Three revisions in a line, with ids that are not hex.

    ::

        v3.0.0.c
        kilo
        059
    """
    return graph(
        Revision("059", None),
        Revision("kilo", "059"),
        Revision("v3.0.0.c", "kilo"),
    )


def branched() -> RevisionGraph:
    """One base, a labelled branch and a plain one, merged back.

    ::

              merge1
             /      \\
          b2aa       c2aa
           |          |
          b1aa        c1aa
      (feature)      /
             \\      /
              a1aa
    """
    return graph(
        Revision("a1aa", None),
        Revision("b1aa", "a1aa", branch_labels="feature"),
        Revision("b2aa", "b1aa"),
        Revision("c1aa", "a1aa"),
        Revision("c2aa", "c1aa"),
        Revision("merge1", ("b2aa", "c2aa")),
    )


def open_branches() -> RevisionGraph:
    """``branched`` before the merge: two heads on one base.

    ::

          b2aa      c2aa
           |         |
          b1aa      c1aa
      (feature)    /
             \\    /
              a1aa
    """
    return graph(
        Revision("a1aa", None),
        Revision("b1aa", "a1aa", branch_labels="feature"),
        Revision("b2aa", "b1aa"),
        Revision("c1aa", "a1aa"),
        Revision("c2aa", "c1aa"),
    )


def two_bases() -> RevisionGraph:
    """Two labelled bases; the second depends on the first by id and by label.

    ::

        (main)                       (networking)
        1975ea83b712                 27c6a30d7c24
             |                            |
        ae1027a6acf  <-- depends_on -- 3cac04ae8714
             ^                            |
             +------ depends_on "main" -- d747a8a88796
    """
    return graph(
        Revision("1975ea83b712", None, branch_labels="main"),
        Revision("ae1027a6acf", "1975ea83b712"),
        Revision("27c6a30d7c24", None, branch_labels="networking"),
        Revision("3cac04ae8714", "27c6a30d7c24", dependencies="ae1027a6acf"),
        Revision("d747a8a88796", "3cac04ae8714", dependencies="main"),
    )
