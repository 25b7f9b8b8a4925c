from deepslim.core import SerializableModule


class Parent(SerializableModule):
    def __init__(self, width: int = 4, depth: int = 2):
        super().__init__()
        self.width = width


class Child(Parent):
    def __init__(self, width: int = 8):
        super().__init__(width, depth=3)


class NoInit(Parent):
    pass


def test_init_args_are_those_of_the_most_derived_constructor():
    assert Parent(5).init_args == {"width": 5, "depth": 2}
    assert Child().init_args == {"width": 8}
    assert NoInit(6).init_args == {"width": 6, "depth": 2}
