"""Fixture tests for factorion.sim: small factories whose rates are derived by hand from the game.

Numbers used in the derivations (all from gamedata, i.e. Factorio 2.0 prototypes):
* belt items/s = 480 x speed: yellow 0.03125 -> 15, red 0.0625 -> 30, blue 0.09375 -> 45;
  one lane carries half: 7.5 / 15 / 22.5.
* inserter items/s (chest to chest, hand size 1) = 60 / (2 x ceil(0.5 / rotation_speed)):
  burner 0.01875 -> 60/78 = 0.769, basic 0.014 -> 60/72 = 0.8333, long-handed 0.02 -> 60/50 = 1.2,
  fast 0.04 -> 60/26 = 2.3077.
* crafting speed: assembling-machine-1 0.5, -2 0.75, -3 1.25; stone furnace 1, steel furnace 2.
* recipes: iron-gear-wheel 2 iron-plate -> 1 in 0.5 s; electronic-circuit 1 iron-plate + 3
  copper-cable -> 1 in 0.5 s; copper-cable 1 copper-plate -> 2 in 0.5 s; iron-plate 1 iron-ore
  -> 1 in 3.2 s; steel-plate 5 iron-plate -> 1 in 16 s.
* underground max distance: yellow 5, red 7, blue 9.
Directions: 0 N, 1 E, 2 S, 3 W.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from factorion.core import gamedata as gd
from factorion.core.world import World
from factorion.sim import simulate, throughput, throughput_batch

N, E, S, W = 0, 1, 2, 3
YB, RB, BB = "transport-belt", "fast-transport-belt", "express-transport-belt"
YU, RU = "underground-belt", "fast-underground-belt"
YS = "splitter"
INS, LONG, FAST = "inserter", "long-handed-inserter", "fast-inserter"
IRON, COPPER = "iron-plate", "copper-plate"

BASIC = 60 / 72      # basic inserter, items/s
LONG_R = 60 / 50     # long-handed inserter
FAST_R = 60 / 26     # fast inserter


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def belt_row(w, y, x0, x1, d=E, name=YB):
    for x in range(x0, x1 + 1):
        w.place(name, y, x, direction=d)


def line(name=YB, n=5, item=IRON, sink_item=None):
    """source -> n belts east -> sink, on row 1 of a 3 x (n+2) world."""
    w = World(3, n + 2)
    w.place("source", 1, 0, item=item)
    belt_row(w, 1, 1, n, name=name)
    w.place("sink", 1, n + 1, item=sink_item or item)
    return w


def same_everywhere(w, expected):
    """The total in every rotation and mirror image of w."""
    for m in (False, True):
        for k in range(4):
            assert throughput(w.transformed(rotate=k, mirror=m)) == approx(expected), (k, m)


# ------------------------------------------------------------------ straight belts
def test_game_numbers_are_what_the_derivations_use():
    assert gd.belt_rate(YB) == 15 and gd.belt_rate(RB) == 30 and gd.belt_rate(BB) == 45
    assert gd.inserter_rate(INS) == approx(BASIC)
    assert gd.inserter_rate(LONG) == approx(LONG_R)
    assert gd.inserter_rate(FAST) == approx(FAST_R)
    assert gd.underground_max_distance(YU) == 5


def test_full_yellow_belt():
    # a source fills both lanes: 2 x 7.5 = 15
    r = simulate(line(YB))
    assert r.total == approx(15)
    assert r.per_sink == {(1, 6): approx(15)}


def test_full_red_belt():
    # 2 x 15 = 30
    assert throughput(line(RB)) == approx(30)


def test_full_blue_belt():
    # 2 x 22.5 = 45
    assert throughput(line(BB)) == approx(45)


def test_red_into_yellow_is_bounded_by_yellow():
    # red lanes 15 each meet yellow lanes 7.5 each: 2 x 7.5 = 15; the first yellow belt limits
    w = World(3, 8)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 3, name=RB)
    belt_row(w, 1, 4, 6, name=YB)
    w.place("sink", 1, 7, item=IRON)
    r = simulate(w)
    assert r.total == approx(15)
    assert r.bottlenecks == [(1, 4)]
    same_everywhere(w, 15)


def test_yellow_into_red_stays_yellow():
    # the yellow start carries 15; red after it has room: 15
    w = World(3, 8)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 3, name=YB)
    belt_row(w, 1, 4, 6, name=RB)
    w.place("sink", 1, 7, item=IRON)
    assert throughput(w) == approx(15)


def test_belt_ending_into_nothing_delivers_nothing():
    # no sink at the end: the belt fills and stops: 0; every belt idle, all jammed
    w = World(3, 7)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 5)
    r = simulate(w)
    assert r.total == 0
    assert set(r.idle) >= {(1, x) for x in range(1, 6)}


def test_sink_of_the_wrong_item_takes_nothing():
    # copper sink at the end of an iron belt: iron never leaves: 0
    r = simulate(line(YB, item=IRON, sink_item=COPPER))
    assert r.total == 0
    assert (1, 1) in r.jammed


def test_belt_into_a_belt_head_on_is_blocked():
    # two belts facing each other do not connect: 0
    w = World(3, 6)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 2, d=E)
    belt_row(w, 1, 3, 4, d=W)
    w.place("sink", 1, 5, item=IRON)
    assert throughput(w) == 0


def test_source_rate_cap():
    # the source gives 5/s (2.5 per lane): 5; the source's cap is what limits (the belt has room)
    w = line()
    w.rates[(1, 0)] = 5.0
    r = simulate(w)
    assert r.total == approx(5)
    assert r.bottlenecks == [(1, 0)]


def test_source_pushes_only_onto_a_belt_pointing_away():
    # the belt beside the source runs past it (north), not away from it: nothing enters
    w = World(4, 3)
    w.place("source", 1, 0, item=IRON)
    w.place(YB, 2, 1, direction=N)
    w.place(YB, 1, 1, direction=N)
    w.place("sink", 0, 1, item=IRON)
    assert throughput(w) == 0


# ------------------------------------------------------------------ curves and side-loading
def curve_world():
    """source -> east x3 -> curve north x3 -> sink."""
    w = World(6, 6)
    w.place("source", 4, 0, item=IRON)
    belt_row(w, 4, 1, 3, d=E)
    w.place(YB, 4, 4, direction=N)  # fed from the west side only, nothing behind: a curve
    for y in (3, 2, 1):
        w.place(YB, y, 4, direction=N)
    w.place("sink", 0, 4, item=IRON)
    return w


def test_curve_carries_both_lanes():
    # a curve is not a side-load: lanes follow it, 2 x 7.5 = 15
    w = curve_world()
    assert throughput(w) == approx(15)
    same_everywhere(w, 15)


def lane_world(copper_from_east: bool):
    """Iron dropped on the LEFT lane of an east belt (inserter on its south side drops on the far,
    north = left lane), the belt turns left (north), copper dropped onto the north belt from one
    side, belt ends into an iron sink."""
    w = World(8, 7)
    w.place("source", 7, 1, item=IRON)
    w.place(INS, 6, 1, direction=S)          # picks from the south (7,1), drops north onto (5,1)
    belt_row(w, 5, 0, 2, d=E)
    w.place(YB, 5, 3, direction=N)           # curve (fed from the west only)
    for y in (4, 3, 2, 1):
        w.place(YB, y, 3, direction=N)
    w.place("sink", 0, 3, item=IRON)
    if copper_from_east:                      # inserter east of the belt drops on its far (west, left) lane
        w.place("source", 3, 5, item=COPPER)
        w.place(INS, 3, 4, direction=E)       # picks east (3,5), drops west (3,3)
    else:                                     # from the west: far lane is the east (right) one
        w.place("source", 3, 1, item=COPPER)
        w.place(INS, 3, 2, direction=W)
    return w


def test_curve_keeps_lanes_left_stays_left():
    # iron rides the left lane through the left turn. Copper dropped on the left lane mixes with
    # it: copper can never leave (iron sink) -> the lane jams: 0.
    assert throughput(lane_world(copper_from_east=True)) == 0
    # copper on the right lane jams only that lane; iron arrives at the inserter's rate: 0.8333
    w = lane_world(copper_from_east=False)
    assert throughput(w) == approx(BASIC)
    same_everywhere(w, BASIC)


def side_load_world(two_sides: bool):
    """A belt east along row 2 into a sink; feeders come down from the north (and up from the
    south). With one feeder the main belt has a belt behind it, so the feeder side-loads."""
    w = World(5, 7)
    belt_row(w, 2, 1 if not two_sides else 3, 5, d=E)
    w.place("sink", 2, 6, item=IRON)
    w.place("source", 0, 3, item=IRON)
    w.place(YB, 1, 3, direction=S)
    if two_sides:
        w.place("source", 4, 3, item=IRON)
        w.place(YB, 3, 3, direction=N)
    return w


def test_one_side_load_fills_one_lane():
    # the feeder's two lanes (15) go onto the main belt's near lane: 7.5
    w = side_load_world(two_sides=False)
    r = simulate(w)
    assert r.total == approx(7.5)
    assert r.flow[(2, 3)] == {IRON: approx(7.5)}
    assert r.bottlenecks == [(2, 3)]
    same_everywhere(w, 7.5)


def test_two_side_loads_fill_both_lanes():
    # nothing behind, fed from both sides: not a curve, each feeder fills its near lane: 15
    w = side_load_world(two_sides=True)
    assert throughput(w) == approx(15)
    same_everywhere(w, 15)


def test_removing_the_belt_behind_turns_a_side_load_into_a_curve():
    # the game is not monotone in entities: with the (empty) belt behind, the feeder side-loads
    # (7.5); remove it and the belt becomes a curve that carries both lanes (15)
    w = side_load_world(two_sides=False)
    w.remove(2, 1)
    w.remove(2, 2)
    assert throughput(w) == approx(15)


def test_main_lane_has_priority_over_side_load():
    # the main belt is full from its source (7.5 per lane); the side-load finds no gap: total 15
    # and the side feeder carries nothing
    w = side_load_world(two_sides=False)
    w.place("source", 2, 0, item=IRON)
    r = simulate(w)
    assert r.total == approx(15)
    assert (1, 3) in r.idle


def test_side_load_fills_what_the_main_lane_leaves():
    # main source capped at 5/s (2.5 per lane); the side-load tops the near lane up to 7.5:
    # near 7.5 + far 2.5 = 10
    w = side_load_world(two_sides=False)
    w.place("source", 2, 0, item=IRON)
    w.rates[(2, 0)] = 5.0
    r = simulate(w)
    assert r.total == approx(10)
    assert r.flow[(1, 3)] == {IRON: approx(5)}


def test_side_loading_an_underground_entrance_passes_one_lane():
    # only the back half of an underground entrance is open: of the feeder's two lanes, only the
    # one on that half gets on (7.5), onto the near lane
    w = World(4, 7)
    w.place("source", 0, 2, item=IRON)
    w.place(YB, 1, 2, direction=S)
    w.place(YB, 2, 1, direction=E)               # something behind the entrance (empty)
    w.place(YU, 2, 2, direction=E, io=1)
    w.place(YU, 2, 4, direction=E, io=2)
    w.place(YB, 2, 5, direction=E)
    w.place("sink", 2, 6, item=IRON)
    assert throughput(w) == approx(7.5)
    same_everywhere(w, 7.5)


def test_side_loading_an_underground_exit_passes_only_its_front_lane():
    # an underground exit is open at its front half only. A south-moving feeder side-loads an
    # east-facing exit from the north: of its lanes only the east one (its left) gets on, onto the
    # exit's near (left) lane, where iron from the entrance runs to an iron sink. Copper dropped on
    # the feeder's west (right) lane never gets on: the line keeps both lanes, 15. Dropped on
    # its east (left) lane, copper mixes into the exit's left lane and jams it: 7.5
    def world(copper_lane_east):
        w = World(4, 8)
        w.place("source", 2, 0, item=IRON)
        w.place(YB, 2, 1, direction=E)
        w.place(YU, 2, 2, direction=E, io=1)
        w.place(YU, 2, 4, direction=E, io=2)
        w.place(YB, 2, 5, direction=E)
        w.place("sink", 2, 6, item=IRON)
        w.place(YB, 0, 4, direction=S)
        w.place(YB, 1, 4, direction=S)
        if copper_lane_east:   # from the west side: far lane = east
            w.place("source", 0, 2, item=COPPER)
            w.place(INS, 0, 3, direction=W)    # picks (0,2), drops (0,4)
        else:                  # from the east side: far lane = west
            w.place("source", 0, 6, item=COPPER)
            w.place(INS, 0, 5, direction=E)    # picks (0,6), drops (0,4)
        return w
    assert throughput(world(False)) == approx(15)
    assert throughput(world(True)) == approx(7.5)
    same_everywhere(world(False), 15)


# ------------------------------------------------------------------ undergrounds
def ug_world(gap: int, name_in=YU, name_out=YU):
    w = World(3, gap + 6)
    w.place("source", 1, 0, item=IRON)
    w.place(YB, 1, 1, direction=E)
    w.place(name_in, 1, 2, direction=E, io=1)
    w.place(name_out, 1, 2 + gap, direction=E, io=2)
    belt_row(w, 1, 3 + gap, gap + 4)
    w.place("sink", 1, gap + 5, item=IRON)
    return w


def test_underground_in_range():
    # output 5 tiles on (= max_distance 5): paired, lanes preserved: 15
    w = ug_world(5)
    assert throughput(w) == approx(15)
    same_everywhere(w, 15)


def test_underground_out_of_range():
    # 6 tiles > 5: the input is unpaired, a dead end: 0
    assert throughput(ug_world(6)) == 0


def test_unpaired_underground_halves_carry_nothing():
    # an input with no output: 0; an output with no input: the belt after it carries nothing
    w = World(3, 7)
    w.place("source", 1, 0, item=IRON)
    w.place(YU, 1, 1, direction=E, io=1)
    w.place(YU, 1, 4, direction=W, io=2)   # faces the other way: not a partner
    w.place(YB, 1, 5, direction=E)
    w.place("sink", 1, 6, item=IRON)
    r = simulate(w)
    assert r.total == 0
    assert {(1, 1), (1, 4), (1, 5)} <= set(r.idle)


def test_underground_tiers_must_match():
    # a yellow entrance does not pair with a red exit: 0
    assert throughput(ug_world(3, YU, RU)) == 0


def test_nearer_entrance_takes_the_exit():
    # entrances at x=2 and x=4, exit at x=6: the exit pairs with x=4, the first entrance is
    # unpaired (a dead end): the source's line delivers nothing
    w = World(3, 9)
    w.place("source", 1, 0, item=IRON)
    w.place(YB, 1, 1, direction=E)
    w.place(YU, 1, 2, direction=E, io=1)
    w.place(YU, 1, 4, direction=E, io=1)
    w.place(YU, 1, 6, direction=E, io=2)
    w.place(YB, 1, 7, direction=E)
    w.place("sink", 1, 8, item=IRON)
    assert throughput(w) == 0


def test_red_underground_into_yellow_belt():
    # red pair (15 per lane) then yellow belts (7.5 per lane): 15
    w = World(3, 9)
    w.place("source", 1, 0, item=IRON)
    w.place(RB, 1, 1, direction=E)
    w.place(RU, 1, 2, direction=E, io=1)
    w.place(RU, 1, 5, direction=E, io=2)
    belt_row(w, 1, 6, 7, name=YB)
    w.place("sink", 1, 8, item=IRON)
    assert throughput(w) == approx(15)


# ------------------------------------------------------------------ splitters
def splitter_world(inputs=(0,), outputs=(0, 1), name=YS, belt=YB):
    """Splitter facing east at (2,3)-(3,3); inputs/outputs by cell index 0 (row 2) / 1 (row 3)."""
    w = World(6, 8)
    w.place(name, 2, 3, direction=E)
    for i in inputs:
        y = 2 + i
        w.place("source", y, 0, item=IRON)
        belt_row(w, y, 1, 2, name=belt)
    for i in outputs:
        y = 2 + i
        belt_row(w, y, 4, 6, name=belt)
        w.place("sink", y, 7, item=IRON)
    return w


def test_splitter_splits_evenly():
    # one full yellow belt in (15), both outputs have room: 7.5 each
    w = splitter_world(inputs=(0,), outputs=(0, 1))
    r = simulate(w)
    assert r.total == approx(15)
    assert r.per_sink == {(2, 7): approx(7.5), (3, 7): approx(7.5)}
    same_everywhere(w, 15)


def test_splitter_merges_bounded_by_the_output_belt():
    # two full belts in (30), one output: bounded by one yellow output (15)
    w = splitter_world(inputs=(0, 1), outputs=(1,))
    r = simulate(w)
    assert r.total == approx(15)
    same_everywhere(w, 15)


def test_splitter_blocked_output_sends_everything_to_the_other():
    # output 0 is a belt into nothing (fills, blocked): all 15 go out the other side
    w = splitter_world(inputs=(0,), outputs=(1,))
    belt_row(w, 2, 4, 6)
    assert throughput(w) == approx(15)


def test_splitter_two_in_two_out():
    # a yellow splitter passes two full belts: 30
    assert throughput(splitter_world(inputs=(0, 1), outputs=(0, 1))) == approx(30)


def test_splitter_with_a_slow_output_overflows_to_the_other():
    # output 0 is a dead-end belt tapped by one basic inserter (0.8333 to a sink); the splitter
    # sends it what it can take and the rest (15 - 0.8333) out the other side: total 15
    w = splitter_world(inputs=(0,), outputs=(1,))
    belt_row(w, 2, 4, 6)
    w.place(INS, 1, 5, direction=S)      # picks (2,5), drops north into (0,5)
    w.place("sink", 0, 5, item=IRON)
    r = simulate(w)
    assert r.total == approx(15)
    assert r.per_sink[(0, 5)] == approx(BASIC)
    assert r.per_sink[(3, 7)] == approx(15 - BASIC)


def test_splitter_output_starves_an_inserter_drop():
    # a blue splitter (22.5 per lane) splits a full blue belt (45): output A is a yellow belt
    # (15) into a sink, output B a blue belt (45) into a sink. A fills to 15 (the splitter sends
    # what fits, the rest goes to B: 30). An inserter dropping onto A finds it full from behind
    # and places nothing: total 45. (A max-flow solver would let the inserter drop 0.8333 and
    # send that much less from the splitter into A: 45.83.)
    w = World(7, 7)
    w.place("source", 2, 0, item=IRON)
    w.place("express-splitter", 2, 1, direction=E)     # cells (2,1), (3,1)
    belt_row(w, 2, 2, 3, name=YB)                      # output A
    w.place("sink", 2, 4, item=IRON)
    belt_row(w, 3, 2, 3, name=BB)                      # output B
    w.place("sink", 3, 4, item=IRON)
    w.place("source", 0, 3, item=IRON)
    w.place(INS, 1, 3, direction=N)                    # picks (0,3), drops (2,3) onto A
    r = simulate(w)
    assert r.per_sink[(2, 4)] == approx(15)
    assert r.per_sink[(3, 4)] == approx(30)
    assert r.total == approx(45)
    assert (1, 3) in r.idle


# ------------------------------------------------------------------ loops
def test_a_loop_elsewhere_leaves_a_line_alone():
    # a closed belt loop fed by its own source (no exit: it fills and jams) beside a full line:
    # the line still carries 15
    w = World(6, 8)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 6)
    w.place("sink", 1, 7, item=IRON)
    w.place("source", 3, 0, item=COPPER)
    w.place(YB, 3, 1, direction=E)
    w.place(YB, 3, 2, direction=E)       # loop: (3,2)E (3,3)S (4,3)W (4,2)N back into (3,2)'s side
    w.place(YB, 3, 3, direction=S)
    w.place(YB, 4, 3, direction=W)
    w.place(YB, 4, 2, direction=N)
    r = simulate(w)
    assert r.total == approx(15)
    assert (3, 2) in r.jammed
    same_everywhere(w, 15)


def test_loop_with_an_exit_passes_what_enters():
    # source -> belt into a splitter whose output 1 loops back into its input 1; output 0 goes to
    # the sink. In steady state everything entering leaves through output 0: 15
    w = World(7, 7)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 2)
    w.place(YS, 1, 3, direction=E)         # cells (1,3) and (2,3)
    belt_row(w, 1, 4, 5)
    w.place("sink", 1, 6, item=IRON)
    # loop from (2,3)'s output: (2,4)S (3,4)W (3,3)W (3,2)N (2,2)E -> splitter input (2,3)
    w.place(YB, 2, 4, direction=S)
    w.place(YB, 3, 4, direction=W)
    w.place(YB, 3, 3, direction=W)
    w.place(YB, 3, 2, direction=N)
    w.place(YB, 2, 2, direction=E)
    r = simulate(w)
    assert r.total == approx(15)


def test_belt_loop_with_a_tap_converges():
    # a 2x2 belt loop fed from behind by a full belt; its return side-loads the entry cell, whose
    # lanes are full from behind, so the loop fills up and moves only what a basic inserter takes
    # off it into a sink: 0.8333 (the loop neither zeroes it nor makes it run away)
    w = World(6, 6)
    w.place("source", 2, 0, item=IRON)
    w.place(YB, 2, 1, direction=E)
    w.place(YB, 2, 2, direction=E)
    w.place(YB, 2, 3, direction=S)
    w.place(YB, 3, 3, direction=W)
    w.place(YB, 3, 2, direction=N)
    w.place(INS, 4, 3, direction=N)     # picks (3,3), drops (5,3)
    w.place("sink", 5, 3, item=IRON)
    r = simulate(w)
    assert r.total == approx(BASIC)
    assert r.iterations < 200
    same_everywhere(w, BASIC)


def test_inserter_loop_does_not_zero_a_belt():
    # an inserter takes plates off the end of a line and drops them back onto its start: the loop
    # is no reason for anything to stop; the sink still gets the full 15
    w = line(n=6)
    w2 = World(4, 8)
    for e in w.entities():
        w2.place(e.name, e.y, e.x, direction=e.direction, item=e.item)
    belt_row(w2, 3, 1, 6, d=W)           # a return belt under the line, ending at (3,1)
    w2.place(INS, 2, 6, direction=N)     # picks (1,6), drops (3,6) onto the return belt
    w2.place(INS, 2, 1, direction=S)     # picks (3,1), drops (1,1) back onto the line
    r = simulate(w2)
    assert r.total == approx(15)


# ------------------------------------------------------------------ inserters
def test_inserter_source_to_sink():
    # chest-to-chest rate of a basic inserter: 0.8333
    w = World(3, 1)
    w.place("source", 0, 0, item=IRON)
    w.place(INS, 1, 0, direction=N)   # picks north (0,0), drops south (2,0)
    w.place("sink", 2, 0, item=IRON)
    assert throughput(w) == approx(BASIC)
    same_everywhere(w, BASIC)


def test_fast_inserter_rate():
    # 60/26 = 2.3077
    w = World(1, 3)
    w.place("source", 0, 0, item=IRON)
    w.place(FAST, 0, 1, direction=W)  # picks west, drops east
    w.place("sink", 0, 2, item=IRON)
    assert throughput(w) == approx(FAST_R)


def test_burner_inserter_rate():
    # burner: rotation_speed 0.013 turns/tick -> ceil(0.5 / 0.013) = 39 ticks per half swing ->
    # 60 / 78 = 0.769 items/s
    w = World(1, 3)
    w.place("source", 0, 0, item=IRON)
    w.place("burner-inserter", 0, 1, direction=W)
    w.place("sink", 0, 2, item=IRON)
    assert throughput(w) == approx(60 / 78)


def test_long_handed_inserter_reaches_two_cells():
    # long-handed: picks 2 north, drops 2 south, 1.2/s; a basic one in its place reaches nothing
    w = World(5, 1)
    w.place("source", 0, 0, item=IRON)
    w.place(LONG, 2, 0, direction=N)
    w.place("sink", 4, 0, item=IRON)
    assert throughput(w) == approx(LONG_R)
    same_everywhere(w, LONG_R)
    w.remove(2, 0)
    w.place(INS, 2, 0, direction=N)
    assert throughput(w) == 0


def test_inserter_taps_leave_the_rest_on_the_belt():
    # three basic inserters take 0.8333 each into their own sinks; the end sink gets
    # 15 - 3 x 0.8333 = 12.5
    w = World(3, 9)
    w.place("source", 2, 0, item=IRON)
    belt_row(w, 2, 1, 7)
    w.place("sink", 2, 8, item=IRON)
    w2 = World(4, 9)
    for e in w.entities():
        w2.place(e.name, e.y + 1, e.x, direction=e.direction, item=e.item)
    for x in (2, 4, 6):
        w2.place(INS, 2, x, direction=S)  # picks (3,x), drops (1,x)
        w2.place("sink", 1, x, item=IRON)
    r = simulate(w2)
    assert r.total == approx(15)
    assert r.per_sink[(3, 8)] == approx(15 - 3 * BASIC)
    for x in (2, 4, 6):
        assert r.per_sink[(1, x)] == approx(BASIC)
    same_everywhere(w2, 15)


def test_dead_end_belt_feeds_an_inserter():
    # a belt ending into nothing, tapped by an inserter at its end: the belt backs up and the
    # inserter takes its rate: 0.8333 (the usual way to feed a machine); the belt is not idle
    w = World(4, 6)
    w.place("source", 1, 0, item=IRON)
    belt_row(w, 1, 1, 4)
    w.place(INS, 2, 4, direction=N)    # picks (1,4), drops (3,4)
    w.place("sink", 3, 4, item=IRON)
    r = simulate(w)
    assert r.total == approx(BASIC)
    assert (1, 4) not in r.idle
    same_everywhere(w, BASIC)


def test_inserter_drops_on_the_far_lane():
    # two inserters on opposite sides of one belt cell drop on different lanes (each the far
    # one), so both fit: 2 x 0.8333; a side-load then shows which lane each used
    w = World(5, 5)
    w.place("source", 0, 2, item=IRON)
    w.place(INS, 1, 2, direction=N)     # picks (0,2), drops (2,2)
    w.place("source", 4, 2, item=IRON)
    w.place(INS, 3, 2, direction=S)     # picks (4,2), drops (2,2)
    belt_row(w, 2, 1, 3)
    w.place("sink", 2, 4, item=IRON)
    assert throughput(w) == approx(2 * BASIC)
    same_everywhere(w, 2 * BASIC)


def test_belt_to_belt_inserter():
    # source -> belt (dead end) -> inserter -> another belt -> sink: 0.8333
    w = World(4, 5)
    w.place("source", 0, 0, item=IRON)
    belt_row(w, 0, 1, 3)
    w.place(INS, 1, 3, direction=N)     # picks (0,3), drops (2,3)
    belt_row(w, 2, 3, 3, d=S)
    w.place("sink", 3, 3, item=IRON)
    assert throughput(w) == approx(BASIC)


def test_chest_passes_what_its_output_inserter_takes():
    # source -> fast inserter (2.31) -> chest -> basic inserter (0.833) -> sink. A chest is no
    # infinite buffer: it fills and its input slows to its output: 0.8333
    w = World(5, 1)
    w.place("source", 0, 0, item=IRON)
    w.place(FAST, 1, 0, direction=N)
    w.place("iron-chest", 2, 0)
    w.place(INS, 3, 0, direction=N)
    w.place("sink", 4, 0, item=IRON)
    r = simulate(w)
    assert r.total == approx(BASIC)
    assert r.flow[(1, 0)] == {IRON: approx(BASIC)}
    assert r.bottlenecks == [(3, 0)]


def test_chest_without_outlet_fills_up():
    # nothing takes from the chest: in steady state its input is 0 too
    w = World(3, 1)
    w.place("source", 0, 0, item=IRON)
    w.place(INS, 1, 0, direction=N)
    w.place("wooden-chest", 2, 0)
    r = simulate(w)
    assert r.total == 0
    assert (1, 0) in r.idle


def test_inserter_into_a_sink_picks_only_its_item():
    # an inserter north of an east belt drops iron on its far (south = right) lane, one south of
    # it drops copper on the north (left) lane: lanes stay apart. The belt ends into an iron sink:
    # the copper lane jams alone, iron arrives at the inserter's 0.8333. An inserter picking from
    # the belt into a copper sink takes only copper, 0.8333 off the copper lane: 2 x 0.8333
    w = World(5, 7)
    w.place("source", 0, 1, item=IRON)
    w.place(INS, 1, 1, direction=N)   # picks (0,1), drops (2,1)
    w.place("source", 4, 1, item=COPPER)
    w.place(INS, 3, 1, direction=S)   # picks (4,1), drops (2,1)
    belt_row(w, 2, 1, 5)
    w.place("sink", 2, 6, item=IRON)
    r = simulate(w)
    assert r.total == approx(BASIC)
    w.place(INS, 3, 4, direction=N)   # picks (2,4), drops (4,4)
    w.place("sink", 4, 4, item=COPPER)
    r = simulate(w)
    assert r.total == approx(2 * BASIC)
    assert r.per_sink[(4, 4)] == approx(BASIC)


def test_mixed_belt_one_item_per_lane_into_two_sinks():
    # iron on the left lane (7.5), copper on the right (7.5) via two side-loading feeders into a
    # T; a splitter is no filter, so separate them with inserters: a fast inserter takes copper
    # into a copper sink (2.3077) at the last cell, the belt ends into an iron sink (7.5 iron);
    # the copper lane backs up and only its inserter's rate leaves: 7.5 + 2.3077
    w = World(5, 7)
    w.place("source", 0, 2, item=IRON)
    w.place(YB, 1, 2, direction=S)        # feeds (2,2) from the north = its left lane
    w.place("source", 4, 2, item=COPPER)
    w.place(YB, 3, 2, direction=N)        # feeds (2,2) from the south = its right lane
    belt_row(w, 2, 2, 5)
    w.place(FAST, 3, 5, direction=N)      # picks (2,5), drops (4,5)
    w.place("sink", 4, 5, item=COPPER)
    w.place("sink", 2, 6, item=IRON)
    r = simulate(w)
    assert r.per_sink[(2, 6)] == approx(7.5)
    assert r.per_sink[(4, 5)] == approx(FAST_R)
    assert r.flow[(2, 4)] == {IRON: approx(7.5), COPPER: approx(FAST_R)}
    same_everywhere(w, 7.5 + FAST_R)


def test_lane_mixing_two_items_into_a_one_item_sink_jams():
    # copper on both lanes of the main belt, iron side-loaded onto its near lane, into an iron
    # sink: the near lane mixes copper and iron, copper never leaves -> jammed; the far lane holds
    # copper only -> jammed too: 0 (a solver maximising delivery would pass the 7.5 iron)
    w = side_load_world(two_sides=False)
    w.place("source", 2, 0, item=COPPER)
    w.remove(0, 3)
    w.place("source", 0, 3, item=IRON)
    r = simulate(w)
    assert r.total == 0
    assert (2, 3) in r.jammed
    # iron side-loaded from the north (left lane), copper from the south (right lane): lanes
    # stay apart, the copper lane jams alone: 7.5
    w2 = side_load_world(two_sides=True)
    w2.remove(4, 3)
    w2.place("source", 4, 3, item=COPPER)
    assert throughput(w2) == approx(7.5)


def test_a_catching_inserter_must_stand_at_the_end():
    # iron (2/s source: 1 per lane) and copper (0.5/s, side-loaded onto the near lane) share the
    # near lane, which ends into an iron sink. A fast inserter one cell before the end would take
    # the copper, but on a moving belt copper can pass it, reach the sink and block the lane:
    # near lane jammed; the capped source puts all its 2/s on the free far lane (7.5 of room):
    # 2.0. At the last cell the inserter reaches the copper waiting at the end, so nothing
    # blocks: iron 2.0 + copper 0.5 = 2.5
    def world(x_ins):
        w = side_load_world(two_sides=False)
        w.place("source", 2, 0, item=IRON)
        w.rates[(2, 0)] = 2.0
        w.remove(0, 3)
        w.place("source", 0, 3, item=COPPER)
        w.rates[(0, 3)] = 0.5
        w.place(FAST, 3, x_ins, direction=N)   # picks (2,x), drops (4,x)
        w.place("sink", 4, x_ins, item=COPPER)
        return w
    assert throughput(world(4)) == approx(2.0)
    r = simulate(world(5))
    assert r.total == approx(2.5)
    assert r.per_sink[(4, 5)] == approx(0.5)


# ------------------------------------------------------------------ machines
def gear_world(machine="assembling-machine-1", in_ins=INS, out_ins=INS):
    """source -> inserter -> 3x3 assembler (gears) -> inserter -> sink, in a column."""
    w = World(9, 3)
    w.place("source", 0, 1, item=IRON)
    w.place(in_ins, 1, 1, direction=N)          # picks (0,1), drops (2,1) into the machine
    w.place(machine, 2, 0, recipe="iron-gear-wheel")
    w.place(out_ins, 5, 1, direction=N)         # picks (4,1) from the machine, drops (6,1)
    w.place("sink", 6, 1, item="iron-gear-wheel")
    return w


def test_gears_from_one_basic_inserter():
    # AM1: 0.5 / 0.5 s = 1 craft/s at most; 2 plates per gear; the input inserter brings 0.8333
    # plates/s -> 0.4167 gears/s; the output inserter (0.8333) has room: 0.41667
    w = gear_world()
    r = simulate(w)
    assert r.total == approx(min(BASIC / 2, 0.5 / 0.5))
    assert r.flow[(2, 0)] == {IRON: approx(BASIC), "iron-gear-wheel": approx(BASIC / 2)}
    assert r.bottlenecks == [(1, 1)]
    same_everywhere(w, BASIC / 2)


def test_gears_bounded_by_the_machine():
    # AM1 with three fast inserters in (3 x 2.3077 = 6.92 plates/s > 2 plates/s needed) and a
    # fast inserter out: the machine's 1 craft/s is the limit: 1.0 gear/s
    w = World(9, 5)
    w.place("assembling-machine-1", 2, 1, recipe="iron-gear-wheel")
    for x in (1, 2, 3):
        w.place("source", 0, x, item=IRON)
        w.place(FAST, 1, x, direction=N)
    w.place(FAST, 5, 2, direction=N)
    w.place("sink", 6, 2, item="iron-gear-wheel")
    r = simulate(w)
    assert r.total == approx(0.5 / 0.5)
    assert r.bottlenecks == [(2, 1)]


def test_gears_bounded_by_the_output_inserter():
    # AM3: 1.25 / 0.5 = 2.5 crafts/s; two fast inserters bring 4.6 plates -> 2.31 crafts/s; the
    # basic output inserter takes 0.8333 gears/s: 0.8333
    w = World(9, 5)
    w.place("assembling-machine-3", 2, 1, recipe="iron-gear-wheel")
    for x in (1, 3):
        w.place("source", 0, x, item=IRON)
        w.place(FAST, 1, x, direction=N)
    w.place(INS, 5, 2, direction=N)
    w.place("sink", 6, 2, item="iron-gear-wheel")
    assert throughput(w) == approx(BASIC)


def test_machine_without_output_inserter_stops():
    # nothing takes the gears out: the machine fills and stops, its input too: 0
    w = gear_world()
    w.remove(5, 1)
    r = simulate(w)
    assert r.total == 0
    assert (1, 1) in r.idle


def test_stone_furnace_smelts_ore():
    # stone furnace: speed 1 / 3.2 s = 0.3125 plates/s, below both inserters (0.8333): 0.3125
    w = World(7, 2)
    w.place("source", 0, 0, item="iron-ore")
    w.place(INS, 1, 0, direction=N)
    w.place("stone-furnace", 2, 0)
    w.place(INS, 4, 0, direction=N)
    w.place("sink", 5, 0, item=IRON)
    r = simulate(w)
    assert r.total == approx(1 / 3.2)
    same_everywhere(w, 1 / 3.2)


def test_furnace_fed_plates_makes_steel():
    # steel: 5 plates -> 1 in 16 s; stone furnace speed 1: 1/16 = 0.0625 steel/s (needs 0.3125
    # plates/s, below the inserter's 0.8333)
    w = World(7, 2)
    w.place("source", 0, 0, item=IRON)
    w.place(INS, 1, 0, direction=N)
    w.place("stone-furnace", 2, 0)
    w.place(INS, 4, 0, direction=N)
    w.place("sink", 5, 0, item="steel-plate")
    assert throughput(w) == approx(1 / 16)


def test_steel_furnace_is_twice_as_fast():
    # steel furnace speed 2: 2 / 3.2 = 0.625 plates/s, still below the inserters (0.8333): 0.625
    w = World(7, 2)
    w.place("source", 0, 0, item="iron-ore")
    w.place(INS, 1, 0, direction=N)
    w.place("steel-furnace", 2, 0)
    w.place(INS, 4, 0, direction=N)
    w.place("sink", 5, 0, item=IRON)
    assert throughput(w) == approx(2 / 3.2)


def test_furnace_fed_two_ores_jams():
    # two ores into one furnace: the recipe is ambiguous -> modelled as jammed: 0
    w = World(7, 4)
    w.place("source", 0, 0, item="iron-ore")
    w.place(INS, 1, 0, direction=N)
    w.place("source", 0, 1, item="copper-ore")
    w.place(INS, 1, 1, direction=N)
    w.place("stone-furnace", 2, 0)
    w.place(INS, 4, 0, direction=N)
    w.place("sink", 5, 0, item=IRON)
    w.place(INS, 4, 1, direction=N)
    w.place("sink", 5, 1, item=COPPER)
    assert throughput(w) == 0


def circuit_world(cable_ins=INS):
    """copper cable source and iron plate source into an AM1 making electronic circuits."""
    w = World(9, 5)
    w.place("assembling-machine-1", 2, 1, recipe="electronic-circuit")
    w.place("source", 0, 1, item=IRON)
    w.place(INS, 1, 1, direction=N)
    w.place("source", 0, 3, item="copper-cable")
    w.place(cable_ins, 1, 3, direction=N)
    w.place(INS, 5, 2, direction=N)
    w.place("sink", 6, 2, item="electronic-circuit")
    return w


def test_electronic_circuits_from_two_ingredients():
    # 1 iron + 3 cable per circuit, AM1 at most 0.5/0.5 = 1 craft/s. Cable by one basic inserter
    # (0.8333/s) -> 0.8333/3 = 0.2778 circuits/s; iron needed 0.2778 < 0.8333; out 0.8333: 0.27778
    r = simulate(circuit_world())
    assert r.total == approx(BASIC / 3)
    assert r.flow[(1, 1)] == {IRON: approx(BASIC / 3)}   # the iron inserter takes only what is used
    # a fast inserter for cable: 2.3077/3 = 0.769 crafts/s, below 1 and the iron 0.8333: 0.76923
    assert throughput(circuit_world(FAST)) == approx(FAST_R / 3)


def test_circuit_chain_with_cable_assembler():
    # copper plates -> AM1 cable (1 plate -> 2 cable, 1 craft/s max) -> inserter straight into the
    # circuit AM1. Plates in by one basic inserter: 0.8333 crafts/s of cable = 1.667 cable/s,
    # bounded by the hand-over inserter: 0.8333 cable/s -> 0.2778 circuits/s
    w = World(9, 8)
    w.place("source", 0, 1, item=COPPER)
    w.place(INS, 1, 1, direction=N)
    w.place("assembling-machine-1", 2, 0, recipe="copper-cable")
    w.place(INS, 3, 3, direction=W)          # picks (3,2) in the cable machine, drops (3,4)
    w.place("assembling-machine-1", 2, 4, recipe="electronic-circuit")
    w.place("source", 0, 5, item=IRON)
    w.place(INS, 1, 5, direction=N)
    w.place(INS, 5, 5, direction=N)
    w.place("sink", 6, 5, item="electronic-circuit")
    assert throughput(w) == approx(BASIC / 3)


def test_machine_missing_an_ingredient_makes_nothing():
    # no cable: no circuits, and the iron inserter idles
    w = circuit_world()
    w.remove(1, 3)
    r = simulate(w)
    assert r.total == 0
    assert (1, 1) in r.idle


def test_assembler_fed_from_a_belt_and_emptied_onto_a_belt():
    # source -> belt (dead end) -> inserter -> AM2 gears (0.75/0.5 = 1.5 crafts/s) -> inserter ->
    # belt -> sink: the input inserter (0.8333 plates) limits: 0.41667 gears/s
    w = World(9, 4)
    w.place("source", 0, 0, item=IRON)
    belt_row(w, 0, 1, 2)
    w.place(INS, 1, 2, direction=N)
    w.place("assembling-machine-2", 2, 1, recipe="iron-gear-wheel")
    w.place(INS, 5, 2, direction=N)
    w.place(YB, 6, 2, direction=S)
    w.place(YB, 7, 2, direction=S)
    w.place("sink", 8, 2, item="iron-gear-wheel")
    assert throughput(w) == approx(BASIC / 2)


def test_upstream_inserter_takes_first():
    # a 1/s plate source: the inserter feeding a gear AM1 sees the plates first and takes 0.8333;
    # the plate sink at the end gets the rest, 0.1667; gears 0.4167: total 0.5833 (a solver
    # maximising delivery would send all plates to the plate sink: 1.0)
    w = World(9, 6)
    w.place("source", 0, 0, item=IRON)
    w.rates[(0, 0)] = 1.0
    belt_row(w, 0, 1, 4)
    w.place("sink", 0, 5, item=IRON)
    w.place(INS, 1, 2, direction=N)     # picks (0,2), drops (2,2)
    w.place("assembling-machine-1", 2, 1, recipe="iron-gear-wheel")
    w.place(INS, 5, 2, direction=N)
    w.place("sink", 6, 2, item="iron-gear-wheel")
    r = simulate(w)
    assert r.per_sink[(0, 5)] == approx(1 - BASIC)
    assert r.per_sink[(6, 2)] == approx(BASIC / 2)


# ------------------------------------------------------------------ result object
def test_result_dict_is_json_and_report_names_things():
    r = simulate(gear_world())
    d = json.loads(json.dumps(r.to_dict()))
    assert d["total"] == approx(BASIC / 2)
    assert d["per_sink"] == {"6,1": approx(BASIC / 2)}
    assert d["bottlenecks"] == ["1,1"]
    text = r.report()
    assert "total: 0.416667" in text and "sink (6, 1)" in text and "inserter at (1, 1)" in text


def test_batch_matches_single():
    worlds = [line(YB), line(RB), gear_world(), splitter_world(inputs=(0, 1), outputs=(1,))]
    grids = np.stack([w.grid for w in worlds[:2]])
    assert throughput_batch(grids).tolist() == [approx(15), approx(30)]
    capped = line(YB)
    out = throughput_batch(np.stack([capped.grid, capped.grid]), rates=[{(1, 0): 4.0}, {}])
    assert out.tolist() == [approx(4), approx(15)]
    arr = np.full((2, 3, 7), np.inf)
    arr[0, 1, 0] = 3.0
    assert throughput_batch(np.stack([capped.grid, capped.grid]), rates=arr).tolist() == [approx(3),
                                                                                         approx(15)]
