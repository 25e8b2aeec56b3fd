"""The colours of drawn frames, shared by every family's painter (tests look for them)."""

GOAL_COLOR = (30, 190, 60)  # a green no other element of a frame uses
GOAL_RING_COLOR = (190, 235, 195)
POINT_COLOR = (215, 40, 40)
TRAIL_COLOR = (240, 170, 160)
WALL_COLOR = (70, 72, 84)
FLOOR_COLOR = (236, 234, 224)
OUTSIDE_COLOR = (255, 255, 255)
