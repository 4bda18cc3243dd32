"""The Ray runner's hosting: components are Ray actors, refs are Ray's, and Ray's errors are ours.

Every `ray` import of the core goes through here (and cluster/, which plans and reserves what a
run places on the cluster), so replay/, actors/ and learner/ stay Ray-free.
"""

from __future__ import annotations

import warnings

from atari_distill.runners.errors import ActorLost, AnswerTimeout


class RayCalls:
    local = False

    def get(self, refs, timeout: float | None = None):
        import ray

        try:
            return ray.get(refs, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise AnswerTimeout(f"no answer within {timeout:g} s") from None
        except ray.exceptions.RayTaskError:
            raise  # the component's own exception (Ray's error is also an instance of its class)
        except ray.exceptions.RayError as error:  # an actor dead, a worker crashed, an object lost with its node
            raise ActorLost(str(error).splitlines()[0] if str(error) else type(error).__name__) from error

    def wait(self, refs: list, num_returns: int, timeout: float | None) -> tuple[list, list]:
        import ray

        return ray.wait(refs, num_returns=num_returns, timeout=timeout)

    def kill(self, handle) -> None:
        import ray

        ray.kill(handle)

    def remote(self, target, **options):
        import ray

        return ray.remote(**options)(target) if options else ray.remote(target)

    def put(self, value):
        import ray

        return ray.put(value)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""

    def node_address(self) -> str:
        import ray

        return ray.util.get_node_ip_address()

    def cancelled(self) -> bool:
        return False  # Ray ends a run's workers itself

    def restarted(self) -> bool:
        import ray

        with warnings.catch_warnings():  # the property reads a deprecated field inside Ray
            warnings.simplefilter("ignore", DeprecationWarning)
            return ray.is_initialized() and ray.get_runtime_context().was_current_actor_reconstructed


RAY = RayCalls()
